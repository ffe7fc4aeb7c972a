//! The category of a requirement (technical, administrative, financial, legal), by closed
//! lists of French and English words: the category with the most words in the sentence wins.

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

/// Stems, lower case and unaccented: a stem matches a word that starts with it (`pénalit`
/// matches `pénalités`), a stem ending in `$` only the whole word, a space any run of spaces
/// or hyphens. Accented letters match their plain ones, so `materiel` finds `matériel`.
const LEXICONS: [(Category, &[&str]); 4] = [
    (
        Category::Legal,
        &[
            "assurance",
            "assure$",
            "insurance",
            "insured",
            "responsabilite",
            "liabilit",
            "liable",
            "juridiction",
            "jurisdiction",
            "tribunal",
            "court$",
            "courts$",
            "litige",
            "dispute",
            "droit applicable",
            "governing law",
            "loi$",
            "lois$",
            "law$",
            "laws$",
            "rgpd",
            "gdpr",
            "donnees personnelles",
            "donnees a caractere personnel",
            "personal data",
            "confidentialit",
            "confidential",
            "secret",
            "non-disclosure",
            "sous traitan",
            "sous traiter",
            "subcontract",
            "propriete intellectuelle",
            "intellectual property",
            "copyright",
            "licence",
            "license",
            "resiliation",
            "terminat",
            "force majeure",
            "code du travail",
            "travail dissimule",
            "labour law",
            "reglementation",
            "regulation",
            "legislation",
            "legal",
            "juridique",
            "contentieux",
            "sanction",
            "anti corruption",
            "bribery",
        ],
    ),
    (
        Category::Financial,
        &[
            "prix",
            "price",
            "pricing",
            "paiement",
            "payment",
            "paid$",
            "pay$",
            "payer$",
            "reglement des factures",
            "factur",
            "invoic",
            "penalit",
            "penalty",
            "penalties",
            "garantie financiere",
            "retenue de garantie",
            "caution",
            "avance$",
            "acompte",
            "advance payment",
            "montant",
            "amount",
            "euro",
            "eur$",
            "ht$",
            "ttc$",
            "tva$",
            "vat$",
            "revision des prix",
            "cout",
            "cost",
            "budget",
            "fee$",
            "fees$",
            "frais",
            "remuneration",
            "rembours",
            "refund",
            "banc",
            "bank",
            "rib$",
            "iban",
            "devis",
            "quotation",
            "tarif",
            "discount",
            "rabais",
            "remise commerciale",
            "interets moratoires",
            "late payment",
            "financ",
            "bpu$",
            "dpgf",
            "dqe$",
        ],
    ),
    (
        Category::Administrative,
        &[
            "dossier",
            "piece",
            "attestation",
            "certificat",
            "certificate",
            "kbis",
            "delai de remise",
            "date limite",
            "remise des offres",
            "remettre",
            "remis$",
            "offre",
            "offres",
            "candidat",
            "candidature",
            "tender",
            "bid$",
            "bids$",
            "bidder",
            "proposal",
            "submission",
            "submit",
            "dc1",
            "dc2",
            "dume",
            "formulaire",
            "form$",
            "forms$",
            "signature",
            "signe",
            "signed",
            "sign$",
            "declaration",
            "registre",
            "register",
            "exemplaire",
            "copie",
            "copies",
            "copy$",
            "enveloppe",
            "envelope",
            "plateforme",
            "portal",
            "deadline",
            "validite",
            "validity",
            "compte rendu",
            "rapport",
            "report",
            "reunion",
            "meeting",
            "interlocuteur",
            "contact",
            "notification",
            "notifi",
            "courrier",
            "ordre de service",
            "memoire technique",
            "administrati",
            "organigramme",
            "references",
            "curriculum",
            "cv$",
            "planning",
            "schedule",
            "langue francaise",
            "english language",
        ],
    ),
    (
        Category::Technical,
        &[
            "materiel",
            "materiels",
            "materiau",
            "material",
            "equipement",
            "equipment",
            "installation",
            "install",
            "performance",
            "norme",
            "normes",
            "nf$",
            "iso$",
            "iec$",
            "standard",
            "specification",
            "technique",
            "technical",
            "logiciel",
            "software",
            "hardware",
            "systeme",
            "system",
            "maintenance",
            "entretien",
            "fonctionnement",
            "temperature",
            "tension",
            "voltage",
            "reseau",
            "network",
            "capacit",
            "compatib",
            "interface",
            "essai",
            "test",
            "mise en service",
            "commissioning",
            "livraison",
            "livrer",
            "livre$",
            "deliver",
            "cablage",
            "cable",
            "electri",
            "energ",
            "securite",
            "safety",
            "security",
            "sauvegarde",
            "backup",
            "chiffr",
            "encrypt",
            "disponibilite",
            "availability",
            "uptime",
            "debit",
            "bandwidth",
            "puissance",
            "power",
            "resistance",
            "dimension",
            "poids",
            "weight",
            "bruit",
            "noise",
            "acoustique",
            "eclairage",
            "lighting",
            "chauffage",
            "heating",
            "ventilation",
            "climatisation",
            "plomberie",
            "peinture",
            "beton",
            "chantier",
            "site$",
            "fourniture",
            "supply",
            "formation",
            "training",
            "documentation technique",
            "plans$",
            "schema",
            "conforme",
            "conformit",
            "compliance",
            "donnees",
            "data$",
            "application",
            "serveur",
            "server",
            "hebergement",
            "hosting",
            "intervention",
            "depannage",
            "repair",
            "pieces detachees",
            "spare parts",
            "garantie de parfait",
        ],
    ),
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

/// A requirement's category, how sure the choice is, and the bytes of `text` of the first
/// word that decided it (`None` when no word of any list is there: then the category is
/// technical, as most requirements of a specification are, with little confidence).
pub(crate) fn categorise(text: &str) -> (Category, f64, Option<Range<usize>>) {
    // Per category (in the lists' order of precedence): its words and the first one.
    let mut counts: Vec<(Category, usize, Range<usize>)> = Vec::with_capacity(LEXICONS.len());
    for (category, regex) in PATTERNS.iter() {
        let mut hits = regex.find_iter(text);
        if let Some(first) = hits.next() {
            counts.push((*category, 1 + hits.count(), first.range()));
        }
    }
    let total: usize = counts.iter().map(|c| c.1).sum();
    // The most words wins; on a tie, the earlier list (legal before financial before
    // administrative before technical: the narrower subject names the requirement better).
    let mut best: Option<&(Category, usize, Range<usize>)> = None;
    for entry in &counts {
        if best.is_none_or(|b| entry.1 > b.1) {
            best = Some(entry);
        }
    }
    match best {
        None => (Category::Technical, 0.3, None),
        Some((category, count, range)) => {
            let second = counts
                .iter()
                .filter(|c| c.0 != *category)
                .map(|c| c.1)
                .max()
                .unwrap_or(0);
            let margin = count.saturating_sub(second) as f64 / total.max(1) as f64;
            (
                *category,
                (0.55 + 0.4 * margin).min(0.95),
                Some(range.clone()),
            )
        }
    }
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
            assert_eq!(categorise(text).0, category, "{text}");
        }
    }

    #[test]
    fn no_word_is_technical_with_little_confidence() {
        let (category, confidence, range) = categorise("Il doit le faire.");
        assert_eq!(category, Category::Technical);
        assert!(confidence < 0.5);
        assert!(range.is_none());
    }
}
