//! The profile on small documents: what is a requirement, where it is, and chunks.
#![allow(clippy::unwrap_used)]

use super::super::super::document::{Page, PageSource};
use super::*;

fn document(pages: &[&str]) -> Document {
    Document {
        pages: pages
            .iter()
            .enumerate()
            .map(|(i, t)| Page::new(i as u32 + 1, (*t).to_owned(), PageSource::Text))
            .collect(),
        format: "text".into(),
        warnings: Vec::new(),
        derived: Default::default(),
    }
}

fn texts(items: &[Requirement]) -> Vec<&str> {
    items.iter().map(|r| r.text.value.as_str()).collect()
}

/// The text a source points at.
fn at(document: &Document, source: &Source) -> String {
    let page = &document.pages[source.page as usize - 1];
    page.text
        .chars()
        .skip(source.start)
        .take(source.end - source.start)
        .collect()
}

const HEADER: &str = "Marché n° 2025-14 - CCTP";
const FOOTER: &str = "Version 2 du 3 mars 2025";

/// Pages with a running header, footer and page number around `bodies`.
fn framed(bodies: &[&str]) -> Vec<String> {
    let n = bodies.len();
    bodies
        .iter()
        .enumerate()
        .map(|(i, body)| format!("{HEADER}\n\n{body}\n\n{FOOTER}\nPage {}/{n}", i + 1))
        .collect()
}

#[test]
fn obligations_not_waivers_headings_or_permissions() {
    let doc = document(&["1. Objet\n\
         Le titulaire doit fournir un planning détaillé. La visite du site n'est pas \
         obligatoire. Le titulaire peut proposer une variante. Le titulaire n'est pas tenu \
         de fournir un échantillon. Il est interdit de fumer dans les locaux.\n\n\
         2. Ce que le titulaire doit fournir\n\
         The supplier should provide a sample. The Supplier shall deliver the goods \
         within 30 days. Tenderers may submit a variant. Le titulaire ne doit pas \
         sous-traiter le lot 1. Doit-il fournir un devis ?"]);
    let items = extract(&doc, 0..1);
    assert_eq!(
        texts(&items),
        vec![
            "Le titulaire doit fournir un planning détaillé.",
            "Il est interdit de fumer dans les locaux.",
            "The Supplier shall deliver the goods within 30 days.",
            "Le titulaire ne doit pas sous-traiter le lot 1.",
        ]
    );
    assert_eq!(items[0].modality, Modality::Obligation);
    assert_eq!(items[3].modality, Modality::Prohibition);
    assert_eq!(items[3].obligation.value, "ne doit pas");
    assert_eq!(at(&doc, &items[3].obligation.source), "ne doit pas");
    let section = items[2].section.as_ref().unwrap();
    assert_eq!(section.value.number, "2");
    assert_eq!(section.value.title, "Ce que le titulaire doit fournir");
    assert_eq!(
        at(&doc, &section.source),
        "2. Ce que le titulaire doit fournir"
    );
    for item in &items {
        assert_eq!(at(&doc, &item.text.source), item.text.value);
        assert!(
            item.id.starts_with("REQ-") && item.id.len() == 14,
            "{}",
            item.id
        );
    }
}

#[test]
fn a_sentence_over_a_page_break_is_joined_past_the_header_and_footer() {
    let pages = framed(&[
        "3.2 Livraison\nLe matériel est livré sur site. Le titulaire doit assurer la\n\
         mise en service des équipements et la formation",
        "des agents avant la réception. Une phrase suit.\n\n3.3 Garanties\n\
         Le matériel doit être garanti deux ans.",
        "4. Prix\nLes prix doivent être fermes.",
    ]);
    let refs: Vec<&str> = pages.iter().map(String::as_str).collect();
    let doc = document(&refs);
    let whole = extract(&doc, 0..3);
    let joined = "Le titulaire doit assurer la mise en service des équipements et la formation \
                  des agents avant la réception.";
    assert_eq!(
        texts(&whole),
        vec![
            joined,
            "Le matériel doit être garanti deux ans.",
            "Les prix doivent être fermes.",
        ]
    );
    let first = &whole[0];
    assert_eq!(first.page, 1);
    let sources = &first.occurrences[0].sources;
    assert_eq!(sources.len(), 2, "{sources:?}");
    assert_eq!(
        at(&doc, &sources[0]),
        "Le titulaire doit assurer la\nmise en service des équipements et la formation"
    );
    assert_eq!(at(&doc, &sources[1]), "des agents avant la réception.");
    assert_eq!(first.text.source, sources[0]);
    assert_eq!(first.section.as_ref().unwrap().value.number, "3.2");
    // Page by page: the sentence goes with page 1, once; page 2 starts with its next one.
    let by_page: Vec<Vec<Requirement>> = (0..3).map(|p| extract(&doc, p..p + 1)).collect();
    assert_eq!(texts(&by_page[0]), vec![joined]);
    assert_eq!(
        texts(&by_page[1]),
        vec!["Le matériel doit être garanti deux ans."]
    );
    assert_eq!(by_page[2][0].section.as_ref().unwrap().value.number, "4");
    let merged: Vec<Requirement> = serde_json::from_value(
        Requirements.merge(by_page.iter().map(|items| to_json(items)).collect()),
    )
    .unwrap();
    assert_eq!(merged, whole);
}

#[test]
fn a_repeated_sentence_is_one_requirement_with_each_place() {
    let doc = document(&[
        "1. Lot 1\nLe titulaire doit respecter le code du travail.\n",
        "2. Lot 2\nLe titulaire doit  respecter le code\ndu travail.",
    ]);
    let parts: Vec<Value> = (0..2)
        .map(|p| Requirements.extract(&doc, p..p + 1))
        .collect();
    let merged: Vec<Requirement> = serde_json::from_value(Requirements.merge(parts)).unwrap();
    assert_eq!(merged.len(), 1);
    let item = &merged[0];
    assert_eq!(item.category.value, Category::Legal);
    let places: Vec<(u32, &str)> = item
        .occurrences
        .iter()
        .map(|o| (o.page, o.section.as_ref().unwrap().value.number.as_str()))
        .collect();
    assert_eq!(places, vec![(1, "1"), (2, "2")]);
    assert_eq!(
        item.id,
        requirement_id("le titulaire DOIT respecter le code du travail.")
    );
}

#[test]
fn table_rows_stand_in_the_section_of_their_table() {
    let doc = document(&["5.1 Exigences techniques\n\
         Le tableau ci-dessous liste les exigences.\n\n\
         Réf.     Exigence                                   Niveau\n\
         EX-01    Les câbles sont conformes à la norme       Obligatoire\n\
         \x20        NF C 15-100.\n\
         EX-02    Une notice en français est fournie.        Facultatif\n\
         EX-03    Le poste doit disposer d'un écran.         Souhaité\n"]);
    let items = extract(&doc, 0..1);
    assert_eq!(
        texts(&items),
        vec![
            "EX-01 | Les câbles sont conformes à la norme NF C 15-100. | Obligatoire",
            "EX-03 | Le poste doit disposer d'un écran. | Souhaité",
        ]
    );
    assert!(items.iter().all(|r| r.kind == Kind::TableRow));
    assert!(items
        .iter()
        .all(|r| r.section.as_ref().unwrap().value.number == "5.1"));
    assert_eq!(items[0].obligation.value, "Obligatoire");
    assert_eq!(items[0].category.value, Category::Technical);
}

#[test]
fn list_items_take_the_obligation_of_their_lead() {
    let doc = document(&[
        "6. Dossier\nLe candidat doit fournir :\n- une attestation d'assurance ;\n\
         - un extrait Kbis ;\n- les factures doivent être en euros.\nLes pièces peuvent être scannées.",
    ]);
    let items = extract(&doc, 0..1);
    assert_eq!(
        texts(&items),
        vec![
            "une attestation d'assurance ;",
            "un extrait Kbis ;",
            "les factures doivent être en euros.",
        ]
    );
    assert_eq!(
        items[0].lead.as_ref().unwrap().value,
        "Le candidat doit fournir :"
    );
    assert_eq!(items[0].obligation.value, "doit");
    // Insurance, but a paper to hand in, in a section about the file to hand in.
    assert_eq!(items[0].category.value, Category::Administrative);
    assert_eq!(items[1].category.value, Category::Administrative);
    assert!(items[2].lead.is_none());
    assert_eq!(items[2].category.value, Category::Financial);
    assert_ne!(items[0].id, requirement_id("une attestation d'assurance ;"));
}

#[test]
fn the_section_in_force_comes_from_pages_before_the_window() {
    let doc = document(&[
        "7. Sécurité\nLe titulaire doit porter un casque.",
        "Une page sans titre.",
        "Une autre page.",
        "Encore une.",
        "Le titulaire doit baliser le chantier.",
    ]);
    let items = extract(&doc, 4..5);
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].section.as_ref().unwrap().value.number, "7");
    assert_eq!(items[0].page, 5);
    assert!(extract(&doc, 5..5).is_empty());
}
