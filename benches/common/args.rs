//! Command-line flags shared by the measurement programs in `benches/`.

/// The value of `--name N`, or `default`.
pub fn number(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The values of `--name A,B,C`, or `default`.
#[allow(dead_code)] // not every measurement program takes a list
pub fn numbers(name: &str, default: &[usize]) -> Vec<usize> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.split(',').map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| default.to_vec())
}

/// True when `--name` is given.
#[allow(dead_code)] // not every measurement program takes a switch
pub fn flag(name: &str) -> bool {
    std::env::args().any(|a| a == name)
}
