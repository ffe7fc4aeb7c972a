//! Degraded scans, as a tired office scanner makes them: the page a little rotated, slightly
//! blurred, with sensor noise, saved as a low-quality JPEG. Deterministic (seeded), so that
//! every run reads the same pages.

use std::path::Path;
use std::process::Command as Process;

/// A grey image, row by row.
pub struct Grey {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<u8>,
}

/// Page `n` of `pdf`, rasterised grey at 300 dpi by poppler.
pub fn rasterise(dir: &Path, pdf: &Path, n: usize) -> Grey {
    let out = dir.join(format!("clean-{n}"));
    let status = Process::new("pdftoppm")
        .args(["-r", "300", "-gray", "-singlefile"])
        .args(["-f", &n.to_string(), "-l", &n.to_string()])
        .arg(pdf)
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    let bytes = std::fs::read(out.with_extension("pgm")).unwrap();
    parse_pgm(&bytes)
}

/// A binary PGM (`P5`, 8 bits), as pdftoppm writes it.
fn parse_pgm(bytes: &[u8]) -> Grey {
    let mut fields = Vec::new();
    let mut at = 0;
    while fields.len() < 4 {
        while bytes[at].is_ascii_whitespace() {
            at += 1;
        }
        let start = at;
        while !bytes[at].is_ascii_whitespace() {
            at += 1;
        }
        fields.push(std::str::from_utf8(&bytes[start..at]).unwrap().to_owned());
    }
    assert_eq!(fields[0], "P5");
    assert_eq!(fields[3], "255");
    let (width, height) = (fields[1].parse().unwrap(), fields[2].parse().unwrap());
    Grey {
        width,
        height,
        pixels: bytes[at + 1..at + 1 + width * height].to_vec(),
    }
}

/// The page degraded: rotated by `degrees`, blurred (a Gaussian of about one pixel), noisy.
pub fn degrade(page: &Grey, degrees: f64, seed: u64) -> Grey {
    blur_and_noise(&rotate(page, degrees), seed)
}

fn rotate(page: &Grey, degrees: f64) -> Grey {
    let (sin, cos) = degrees.to_radians().sin_cos();
    let (cx, cy) = (page.width as f64 / 2.0, page.height as f64 / 2.0);
    let mut pixels = vec![255u8; page.pixels.len()];
    for y in 0..page.height {
        for x in 0..page.width {
            // Where this pixel comes from in the straight page (bilinear).
            let (dx, dy) = (x as f64 - cx, y as f64 - cy);
            let sx = cos * dx + sin * dy + cx;
            let sy = -sin * dx + cos * dy + cy;
            if sx < 0.0 || sy < 0.0 {
                continue;
            }
            let (x0, y0) = (sx as usize, sy as usize);
            if x0 + 1 >= page.width || y0 + 1 >= page.height {
                continue;
            }
            let (fx, fy) = (sx - x0 as f64, sy - y0 as f64);
            let at = |x: usize, y: usize| f64::from(page.pixels[y * page.width + x]);
            let top = at(x0, y0) * (1.0 - fx) + at(x0 + 1, y0) * fx;
            let bottom = at(x0, y0 + 1) * (1.0 - fx) + at(x0 + 1, y0 + 1) * fx;
            pixels[y * page.width + x] = (top * (1.0 - fy) + bottom * fy).round() as u8;
        }
    }
    Grey {
        width: page.width,
        height: page.height,
        pixels,
    }
}

fn blur_and_noise(page: &Grey, seed: u64) -> Grey {
    const KERNEL: [u32; 5] = [1, 4, 6, 4, 1];
    let (w, h) = (page.width, page.height);
    let mut across = vec![0u32; w * h];
    for y in 0..h {
        for x in 0..w {
            let mut sum = 0;
            for (k, weight) in KERNEL.iter().enumerate() {
                let sx = (x + k).saturating_sub(2).min(w - 1);
                sum += u32::from(page.pixels[y * w + sx]) * weight;
            }
            across[y * w + x] = sum;
        }
    }
    let mut state = seed | 1;
    let mut noise = move || {
        // xorshift64*, summed three times: roughly Gaussian, about ±18 grey levels at most.
        let mut total = 0i32;
        for _ in 0..3 {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            total += (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 59) as i32 - 16;
        }
        total * 6 / 8
    };
    let mut pixels = vec![0u8; w * h];
    for y in 0..h {
        for x in 0..w {
            let mut sum = 0;
            for (k, weight) in KERNEL.iter().enumerate() {
                let sy = (y + k).saturating_sub(2).min(h - 1);
                sum += across[sy * w + x] * weight;
            }
            let value = (sum / 256) as i32 + noise();
            pixels[y * w + x] = value.clamp(0, 255) as u8;
        }
    }
    Grey {
        width: w,
        height: h,
        pixels,
    }
}

/// The page as a JPEG of the given quality.
pub fn jpeg(page: &Grey, quality: u8) -> Vec<u8> {
    // Three components, as a scanner (and poppler) writes grey pages: the PDF says RGB.
    let rgb: Vec<u8> = page.pixels.iter().flat_map(|v| [*v, *v, *v]).collect();
    let mut out = Vec::new();
    let encoder = jpeg_encoder::Encoder::new(&mut out, quality);
    encoder
        .encode(
            &rgb,
            u16::try_from(page.width).unwrap(),
            u16::try_from(page.height).unwrap(),
            jpeg_encoder::ColorType::Rgb,
        )
        .unwrap();
    out
}
