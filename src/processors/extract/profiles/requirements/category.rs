//! The category of a requirement (technical, administrative, financial, legal), by closed
//! lists of French and English words: the category with the most words in the sentence wins,
//! the words of its section's title counting half (a requirement under `Sécurité` leans to
//! technical). Where two lists' words overlap (`mémoire technique`, `données
//! personnelles`), the longer one counts, once.

use std::ops::Range;
use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

/// What a requirement is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) enum Category {
    /// Equipment, installation, performance, standards, delivery, maintenance.
    Technical,
    /// Files, forms, certificates, submission, meetings and reports.
    Administrative,
    /// Prices, payment, invoices, penalties, guarantees.
    Financial,
    /// Insurance, liability, courts, personal data, confidentiality, subcontracting.
    Legal,
}

/// Stems, lower case and unaccented, in order of precedence on a tie (legal, financial, then
/// technical before administrative: `submit the lighting calculations` is about lighting).
/// A stem matches a word that starts with it (`pénalit`
/// matches `pénalités`), a stem ending in `$` only the whole word, a space any run of spaces
/// or hyphens. Accented letters match their plain ones, so `materiel` finds `matériel`.
#[rustfmt::skip]
const LEXICONS: [(Category, &[&str]); 4] = [
    (Category::Legal, &[
        "assurance", "assure$", "insurance", "insured", "responsabilite", "liabilit", "liable",
        "juridiction", "jurisdiction", "tribunal", "court$", "courts$", "litige", "dispute",
        "droit applicable", "governing law", "loi$", "lois$", "law$", "laws$", "rgpd", "gdpr",
        "donnees personnelles", "donnees a caractere personnel", "personal data", "confidentialit",
        "confidential", "secret", "non-disclosure", "sous traitan", "sous traiter", "subcontract",
        "propriete intellectuelle", "intellectual property", "copyright", "licence", "license",
        "resiliation", "terminat", "force majeure", "code du travail", "travail dissimule",
        "labour law", "reglementation", "regulation", "legislation", "legal", "juridique",
        "contentieux", "sanction", "anti corruption", "bribery",
    ]),
    (Category::Financial, &[
        "prix", "price", "pricing", "paiement", "payment", "paid$", "pay$", "payer$",
        "reglement des factures", "factur", "invoic", "penalit", "penalty", "penalties",
        "garantie financiere", "retenue de garantie", "caution", "avance$", "acompte",
        "advance payment", "montant", "amount", "euro", "eur$", "ht$", "ttc$", "tva$", "vat$",
        "revision des prix", "cout", "cost", "budget", "fee$", "fees$", "frais", "remuneration",
        "rembours", "refund", "banc", "bank", "rib$", "iban", "devis", "quotation", "tarif",
        "discount", "rabais", "remise commerciale", "interets moratoires", "late payment",
        "financ", "bpu$", "dpgf", "dqe$", "liquidated damages", "pound$", "pounds$", "sterling",
        "gbp$",
    ]),
    (Category::Technical, &[
        "materiel", "materiels", "materiau", "material", "equipement", "equipment", "installation",
        "install", "performance", "norme", "normes", "nf$", "iso$", "iec$", "standard",
        "specification", "technique", "technical", "logiciel", "software", "hardware", "systeme",
        "system", "maintenance", "entretien", "fonctionnement", "temperature", "tension",
        "voltage", "reseau", "network", "capacit", "compatib", "interface", "essai", "test",
        "mise en service", "commissioning", "livraison", "livrer", "livre$", "deliver", "cablage",
        "cable", "electri", "energ", "securite", "safety", "security", "sauvegarde", "backup",
        "chiffr", "encrypt", "disponibilite", "availability", "uptime", "debit", "bandwidth",
        "puissance", "power", "resistance", "dimension", "poids", "weight", "bruit", "noise",
        "acoustique", "eclairage", "lighting", "chauffage", "heating", "ventilation",
        "climatisation", "plomberie", "peinture", "beton", "chantier", "site$", "fourniture",
        "supply", "formation", "training", "documentation technique", "plans$", "schema",
        "conforme", "conformit", "compliance", "donnees", "data$", "application", "serveur",
        "server", "hebergement", "hosting", "intervention", "depannage", "repair",
        "pieces detachees", "pieces de rechange", "spare parts", "garantie de parfait",
        "echantillon", "sample",
    ]),
    (Category::Administrative, &[
        "dossier", "pieces justificatives", "pieces administratives", "pieces constitutives",
        "pieces du dossier", "pieces a fournir", "pieces demandees", "attestation", "certificat",
        "certificate", "kbis", "delai de remise", "date limite", "remise des offres", "remettre",
        "remis$", "offre", "offres", "candidature", "tender", "bid$", "bids$", "bidder",
        "proposal", "submission", "submit", "dc1", "dc2", "dume", "formulaire", "form$", "forms$",
        "signature", "signe", "signed", "sign$", "declaration", "registre", "register",
        "exemplaire", "copie", "copies", "copy$", "enveloppe", "envelope", "plateforme", "portal",
        "deadline", "validite", "validity", "compte rendu", "rapport", "report", "reunion",
        "meeting", "interlocuteur", "contact", "notification", "notifi", "courrier",
        "ordre de service", "memoire technique", "administrati", "organigramme", "references",
        "curriculum", "cv$", "planning", "schedule", "langue francaise", "english language",
        "informer", "inform$", "informs$", "avertir", "prevenir", "notify", "english$",
        "francais$",
    ]),
];

/// One pattern per category, every stem an alternative.
static PATTERNS: LazyLock<Vec<(Category, Regex)>> = LazyLock::new(|| {
    LEXICONS
        .iter()
        .map(|(category, stems)| {
            let alternatives: Vec<String> = stems.iter().map(|s| stem_pattern(s)).collect();
            let source = format!(r"(?i)\b(?:{})", alternatives.join("|"));
            let regex = Regex::new(&source)
                .unwrap_or_else(|e| unreachable!("lexicon of {category:?}: {e}"));
            (*category, regex)
        })
        .collect()
});

/// A stem as a pattern: accented letters for plain ones, spaces and hyphens for spaces.
fn stem_pattern(stem: &str) -> String {
    let (stem, whole) = match stem.strip_suffix('$') {
        Some(s) => (s, true),
        None => (stem, false),
    };
    let mut out = String::new();
    for c in stem.chars() {
        match c {
            'a' => out.push_str("[aàâä]"),
            'e' => out.push_str("[eéèêë]"),
            'i' => out.push_str("[iîï]"),
            'o' => out.push_str("[oôö]"),
            'u' => out.push_str("[uùûü]"),
            'c' => out.push_str("[cç]"),
            ' ' | '-' => out.push_str(r"[\s\-’']+"),
            _ => out.push_str(&regex::escape(&c.to_string())),
        }
    }
    if whole {
        out.push_str(r"\b");
    }
    out
}

/// Every word of the lists in `text`: its category and bytes, without overlaps (the
/// longer of two overlapping words stays), in order.
fn words(text: &str) -> Vec<(usize, Range<usize>)> {
    let mut all: Vec<(usize, Range<usize>)> = Vec::new();
    for (n, (_, regex)) in PATTERNS.iter().enumerate() {
        all.extend(regex.find_iter(text).map(|m| (n, m.range())));
    }
    all.sort_by_key(|(n, r)| (r.start, std::cmp::Reverse(r.end), *n));
    let mut kept: Vec<(usize, Range<usize>)> = Vec::with_capacity(all.len());
    for (n, range) in all {
        if kept.last().is_none_or(|(_, last)| range.start >= last.end) {
            kept.push((n, range));
        }
    }
    kept
}

/// A requirement's category, how sure the choice is, and the bytes of `text` of the first
/// word that decided it. `section` is the title of the section it stands in. Without a word
/// of any list, the category is technical (as most requirements of a specification are)
/// with little confidence, and no word.
pub(crate) fn categorise(
    text: &str,
    section: Option<&str>,
) -> (Category, f64, Option<Range<usize>>) {
    // Scores in halves: a word of the text counts 2, one of the section's title 1.
    let mut scores = [0usize; LEXICONS.len()];
    let mut first: [Option<Range<usize>>; LEXICONS.len()] = Default::default();
    for (n, range) in words(text) {
        scores[n] += 2;
        if first[n].is_none() {
            first[n] = Some(range);
        }
    }
    for (n, _) in section.map(words).unwrap_or_default() {
        scores[n] += 1;
    }
    let total: usize = scores.iter().sum();
    // The highest score wins; on a tie, the earlier list.
    let mut best = 0;
    for n in 1..scores.len() {
        if scores[n] > scores[best] {
            best = n;
        }
    }
    if total == 0 {
        return (Category::Technical, 0.3, None);
    }
    let second = (0..scores.len())
        .filter(|n| *n != best)
        .map(|n| scores[n])
        .max()
        .unwrap_or(0);
    let margin = (scores[best] - second) as f64 / total as f64;
    let category = PATTERNS[best].0;
    (
        category,
        (0.55 + 0.4 * margin).min(0.95),
        first[best].clone(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_category_from_its_words() {
        for (text, category) in [
            (
                "Le matériel doit être conforme à la norme NF EN 60204.",
                Category::Technical,
            ),
            (
                "The system shall have an availability of 99.9 %.",
                Category::Technical,
            ),
            (
                "Le candidat doit remettre son dossier de candidature complet.",
                Category::Administrative,
            ),
            (
                "Tenderers must submit their bid through the portal.",
                Category::Administrative,
            ),
            (
                "Les factures doivent mentionner le numéro du bon de commande.",
                Category::Financial,
            ),
            (
                "Late delivery shall incur penalties of 1 % of the price per day.",
                Category::Financial,
            ),
            (
                "Le titulaire doit souscrire une assurance responsabilité civile.",
                Category::Legal,
            ),
            (
                "The supplier shall comply with the GDPR for personal data.",
                Category::Legal,
            ),
            (
                "Le titulaire ne doit pas sous-traiter plus de 30 % du marché.",
                Category::Legal,
            ),
        ] {
            assert_eq!(categorise(text, None).0, category, "{text}");
        }
    }

    #[test]
    fn overlapping_words_count_once_and_sections_lean() {
        let text = "Le mémoire technique doit présenter les délais de livraison.";
        assert_eq!(
            categorise(text, None).0,
            Category::Technical,
            "a tie: technical first"
        );
        let text = "Le mémoire technique doit être paginé.";
        assert_eq!(categorise(text, None).0, Category::Administrative);
        let text = "The Supplier shall act within 24 hours.";
        assert_eq!(categorise(text, Some("Security")).0, Category::Technical);
        assert_eq!(categorise(text, Some("Invoicing")).0, Category::Financial);
        let text = "The Supplier shall notify the Council of any incident.";
        assert_eq!(
            categorise(text, Some("Security")).0,
            Category::Administrative,
            "a word of the text outweighs one of the title"
        );
    }

    #[test]
    fn no_word_is_technical_with_little_confidence() {
        let (category, confidence, range) = categorise("Il doit le faire.", None);
        assert_eq!(category, Category::Technical);
        assert!(confidence < 0.5);
        assert!(range.is_none());
    }
}
