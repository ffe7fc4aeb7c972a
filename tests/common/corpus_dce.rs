//! Tender documents for the `dce` profile, written here with what each holds: French
//! règlements de consultation, a CCAP, an acte d'engagement, and English invitations to
//! tender; lots as tables and as lists, criteria with sub-criteria, running headers and
//! footers on multi-page documents, and decoys (questions' deadlines, tranches, a fallback
//! procedure, offer validity). Pages are at most 34 lines of at most 72 characters, so that
//! each fits one PDF page.
#![allow(dead_code)]

/// What a document holds, as the profile should read it.
#[derive(Debug, Default, Clone)]
pub struct Expected {
    pub buyer: Option<&'static str>,
    pub object: Option<&'static str>,
    pub reference: Option<&'static str>,
    /// The procedure's type.
    pub procedure: Option<&'static str>,
    /// `YYYY-MM-DD HH:MM` or `YYYY-MM-DD`.
    pub deadline: Option<&'static str>,
    /// `12 months`, `4 years`.
    pub initial: Option<&'static str>,
    pub total: Option<&'static str>,
    /// `number|title|amount|tax` (amount and tax empty when not given).
    pub lots: Vec<&'static str>,
    /// `name|weight`, sub-criteria as `parent > name|weight`.
    pub criteria: Vec<&'static str>,
    pub cpv: Vec<&'static str>,
    pub site_visit: Option<bool>,
    pub variants: Option<bool>,
    /// `lot:true|false`.
    pub lot_visits: Vec<&'static str>,
    pub lot_variants: Vec<&'static str>,
    /// `type|rate` (rate empty when none).
    pub guarantees: Vec<&'static str>,
}

/// One document: its pages' text and what it holds.
#[derive(Debug, Clone)]
pub struct Doc {
    pub name: &'static str,
    pub pages: Vec<String>,
    pub expected: Expected,
}

/// Every page of a document, the running header and footer added to each.
fn paged(header: &str, bodies: &[&str]) -> Vec<String> {
    let n = bodies.len();
    bodies
        .iter()
        .enumerate()
        .map(|(i, body)| {
            if header.is_empty() {
                (*body).to_owned()
            } else {
                format!("{header}\n\n{body}\n\nPage {} / {n}", i + 1)
            }
        })
        .collect()
}

pub fn corpus() -> Vec<Doc> {
    vec![
        rc_mapa(),
        ccap_open_tender(),
        acte_engagement(),
        itt_open(),
        itt_flexible(),
        rc_negotiated(),
    ]
}

/// A French RC: MAPA, two pages, a lots table, numbered criteria, questions before offers.
fn rc_mapa() -> Doc {
    let page1 = "\
REGLEMENT DE LA CONSULTATION

Pouvoir adjudicateur : Commune de Villeneuve-sur-Lot, 2 rue Nationale
Objet de la consultation : Entretien des espaces verts communaux
Référence : MAPA-2025-017

Article 1 - Procédure
Procédure : procédure adaptée ouverte (article R. 2123-1 du code de la
commande publique).

Article 2 - Allotissement
N° lot    Désignation                      Montant estimé HT
1         Tonte et débroussaillage         48 000,00 €
2         Taille des haies                 22 500,00 €
3         Élagage                          31 000,00 €

Classification CPV : 77310000-6 (services de plantation et d'entretien)
et 77341000-2 (élagage).

Article 3 - Variantes et visite
Les variantes ne sont pas autorisées.
La visite des lieux est obligatoire pour le lot 3.";
    let page2 = "\
Article 4 - Critères d'attribution
Les offres sont jugées selon les critères suivants :
1. Prix des prestations : 40 %
2. Valeur technique : 60 %
   2.1 Méthodologie d'intervention : 35 %
   2.2 Moyens humains et matériels : 25 %

Article 5 - Conditions de remise
Date limite de réception des questions : 3 mars 2025 à 17h00
Date limite de réception des offres : 17 mars 2025 à 12h00
Ouverture des plis : 18 mars 2025

Article 6 - Durée
Le marché est conclu pour une durée de 12 mois à compter de sa
notification.";
    Doc {
        name: "rc-mapa",
        pages: paged(
            "Commune de Villeneuve-sur-Lot - RC MAPA-2025-017",
            &[page1, page2],
        ),
        expected: Expected {
            buyer: Some("Commune de Villeneuve-sur-Lot"),
            object: Some("Entretien des espaces verts communaux"),
            reference: Some("MAPA-2025-017"),
            procedure: Some("mapa"),
            deadline: Some("2025-03-17 12:00"),
            initial: Some("12 months"),
            total: None,
            lots: vec![
                "1|Tonte et débroussaillage|48000|excluded",
                "2|Taille des haies|22500|excluded",
                "3|Élagage|31000|excluded",
            ],
            criteria: vec![
                "Prix des prestations|40",
                "Valeur technique|60",
                "Valeur technique > Méthodologie d'intervention|35",
                "Valeur technique > Moyens humains et matériels|25",
            ],
            cpv: vec!["77310000-6", "77341000-2"],
            site_visit: None,
            variants: Some(false),
            lot_visits: vec!["3:true"],
            lot_variants: vec![],
            guarantees: vec![],
        },
    }
}

/// A French CCAP: open tender, lots as a list, tranches, duration with renewals, guarantees.
fn ccap_open_tender() -> Doc {
    let page1 = "\
CAHIER DES CLAUSES ADMINISTRATIVES PARTICULIÈRES (CCAP)

Maître d'ouvrage : Département de la Gironde
Objet du marché : Travaux de réhabilitation du collège Jean Moulin
à Bordeaux
Marché n° 25-0142

Le présent marché est passé selon la procédure de l'appel d'offres
ouvert.

ARTICLE 2 - DÉCOMPOSITION EN LOTS ET TRANCHES
Le marché est décomposé en deux lots :
- Lot n° 1 : Gros œuvre
  Montant estimatif : 850 000,00 € HT
- Lot n° 2 : Menuiseries extérieures
  Montant estimatif : 210 000,00 € HT
Chaque lot comprend une tranche ferme et une tranche optionnelle.
Tranche ferme : bâtiment A, 600 000,00 € HT
Tranche optionnelle : bâtiment B, 250 000,00 € HT";
    let page2 = "\
ARTICLE 4 - DURÉE DU MARCHÉ
Le marché est conclu pour une durée initiale de douze (12) mois,
reconductible 2 fois par période de 12 mois, soit une durée maximale
de 36 mois.
Le délai de validité des offres est de 120 jours.

ARTICLE 5 - GARANTIES
Une retenue de garantie de 5 % est appliquée sur chaque acompte.
Elle peut être remplacée par une garantie à première demande ou par
une caution personnelle et solidaire.
Une avance forfaitaire de 10 % est accordée au titulaire.
Les ouvrages sont couverts par la garantie de parfait achèvement et par
la garantie décennale.";
    Doc {
        name: "ccap-aoo",
        pages: paged("CCAP - Marché n° 25-0142", &[page1, page2]),
        expected: Expected {
            buyer: Some("Département de la Gironde"),
            object: Some("Travaux de réhabilitation du collège Jean Moulin à Bordeaux"),
            reference: Some("25-0142"),
            procedure: Some("openTender"),
            deadline: None,
            initial: Some("12 months"),
            total: Some("36 months"),
            lots: vec![
                "1|Gros œuvre|850000|excluded",
                "2|Menuiseries extérieures|210000|excluded",
            ],
            criteria: vec![],
            cpv: vec![],
            site_visit: None,
            variants: None,
            lot_visits: vec![],
            lot_variants: vec![],
            guarantees: vec![
                "retention|5",
                "firstDemandGuarantee|",
                "jointSurety|",
                "advance|10",
                "perfectCompletion|",
                "decennial|",
            ],
        },
    }
}

/// A French acte d'engagement: a form, labels and values in columns and on next lines.
fn acte_engagement() -> Doc {
    let page = "\
ACTE D'ENGAGEMENT

A - Identification de l'acheteur
Nom de l'acheteur :
Syndicat Intercommunal des Eaux du Val de Loire
Consultation n° :     SIE-2025-04
Mode de passation :   Procédure concurrentielle avec négociation

B - Objet du marché
Objet :   Fourniture de compteurs d'eau communicants

C - Durée
Durée : 24 mois à compter de la date de notification.

D - Prix
Le titulaire s'engage, pour le lot 1 (Compteurs résidentiels),
sur un montant de 96 000,00 € HT.
Lot 1 : Compteurs résidentiels

Code CPV principal :   38421100-3

E - Signature
Fait à Orléans, le 2 avril 2025";
    Doc {
        name: "acte-engagement",
        pages: vec![page.to_owned()],
        expected: Expected {
            buyer: Some("Syndicat Intercommunal des Eaux du Val de Loire"),
            object: Some("Fourniture de compteurs d'eau communicants"),
            reference: Some("SIE-2025-04"),
            procedure: Some("competitiveNegotiation"),
            deadline: None,
            initial: Some("24 months"),
            total: None,
            lots: vec!["1|Compteurs résidentiels||"],
            criteria: vec![],
            cpv: vec!["38421100-3"],
            site_visit: None,
            variants: None,
            lot_visits: vec![],
            lot_variants: vec![],
            guarantees: vec![],
        },
    }
}

/// An English invitation to tender: open procedure, lots in a list, bulleted sub-criteria.
fn itt_open() -> Doc {
    let page1 = "\
INVITATION TO TENDER

Contracting authority: Borough of Kingsford Council, Town Hall
Contract title: Provision of Cleaning Services for Council Buildings
Tender reference: KBC-ITT-0425

1. Procedure
This tender is conducted under the open procedure.

2. Lots
Lot 1: Office buildings (estimated value £120,000.00 excluding VAT)
Lot 2: Leisure centres (estimated value £85,000.00 excluding VAT)

CPV codes: 90911200-8, 90919200-4

3. Timetable
Clarification questions must be submitted by 24 March 2025.
Tenders must be received no later than 12:00 noon on 14 April 2025.";
    let page2 = "\
4. Award criteria
Tenders will be evaluated as follows:
Quality 60%, assessed through:
- Methodology 30%
- Staffing and training 20%
- Social value 10%
Price 40%

5. Other requirements
A site visit is optional but recommended.
Variant bids will not be accepted.
A performance bond of 10% of the annual contract value is required.
A parent company guarantee may be required.

6. Contract period
The contract will run for an initial period of 3 years, renewable for
up to two further periods of 12 months.";
    Doc {
        name: "itt-open",
        pages: paged("Kingsford Council | KBC-ITT-0425", &[page1, page2]),
        expected: Expected {
            buyer: Some("Borough of Kingsford Council"),
            object: Some("Provision of Cleaning Services for Council Buildings"),
            reference: Some("KBC-ITT-0425"),
            procedure: Some("openProcedure"),
            deadline: Some("2025-04-14 12:00"),
            initial: Some("3 years"),
            total: Some("60 months"),
            lots: vec![
                "1|Office buildings|120000|excluded",
                "2|Leisure centres|85000|excluded",
            ],
            criteria: vec![
                "Quality|60",
                "Quality > Methodology|30",
                "Quality > Staffing and training|20",
                "Quality > Social value|10",
                "Price|40",
            ],
            cpv: vec!["90911200-8", "90919200-4"],
            site_visit: Some(false),
            variants: Some(false),
            lot_visits: vec![],
            lot_variants: vec![],
            guarantees: vec!["performanceBond|10", "parentCompanyGuarantee|"],
        },
    }
}

/// An English invitation to tender: a lots table, criteria in points, per-lot clauses.
fn itt_flexible() -> Doc {
    let page = "\
Invitation to Tender - Highways Maintenance Framework

Buyer:     Northshire County Council
Subject of the contract:     Highways maintenance framework
Our reference:     NCC/HW/2025/031
Procedure type:     Competitive flexible procedure

Lot No.   Description                Estimated value (excl. VAT)
1         Road resurfacing           £2,400,000.00
2         Drainage works             £650,000.00

Evaluation criteria
a) Technical merit    40 points
b) Price    60 points

Deadline for receipt of tenders: 30/05/2025 at 15:00 (UK time).
Deadline for site visit requests: 9 May 2025.
A site visit is mandatory for Lot 2.
Variants are permitted for Lot 1 only.
Variants are not permitted for Lot 2.

The framework will last for 4 years.
Retention of 3% will be held until completion.
A performance bond is not required.";
    Doc {
        name: "itt-flexible",
        pages: vec![page.to_owned()],
        expected: Expected {
            buyer: Some("Northshire County Council"),
            object: Some("Highways maintenance framework"),
            reference: Some("NCC/HW/2025/031"),
            procedure: Some("competitiveFlexible"),
            deadline: Some("2025-05-30 15:00"),
            initial: Some("4 years"),
            total: None,
            lots: vec![
                "1|Road resurfacing|2400000|excluded",
                "2|Drainage works|650000|excluded",
            ],
            criteria: vec!["Technical merit|40", "Price|60"],
            cpv: vec![],
            site_visit: None,
            variants: None,
            lot_visits: vec!["2:true"],
            lot_variants: vec!["1:true", "2:false"],
            guarantees: vec!["retention|3"],
        },
    }
}

/// A French RC over three pages: a fallback procedure named, the criteria list running on
/// to the next page, lots on two pages and named again in a clause.
fn rc_negotiated() -> Doc {
    let page1 = "\
RÈGLEMENT DE LA CONSULTATION

Acheteur : Centre Hospitalier de Vannes
Objet : Maintenance des installations de chauffage et de climatisation
Référence de la consultation : CHV-2025-MC-09

La présente consultation est passée selon la procédure négociée sans
publicité ni mise en concurrence préalables.
En cas de procédure infructueuse, un appel d'offres ouvert pourra être
lancé.

Décomposition en lots :
- Lot 1 : Chaufferies centrales";
    let page2 = "\
- Lot 2 : Climatisation des blocs opératoires
- Lot 3 : Ventilation

Les candidatures et les offres doivent être remises avant le 5 juin 2025
à 16 heures.
Les demandes de renseignements doivent parvenir au plus tard le
26 mai 2025.

Critères de jugement des offres :
- Valeur technique : 50 %";
    let page3 = "\
- Prix : 40 %
- Performances environnementales : 10 %

La visite des installations est obligatoire pour le lot 2.
Les variantes sont autorisées.
Le marché est conclu pour une durée de 3 ans.";
    Doc {
        name: "rc-negociee",
        pages: paged("CHV - RC CHV-2025-MC-09", &[page1, page2, page3]),
        expected: Expected {
            buyer: Some("Centre Hospitalier de Vannes"),
            object: Some("Maintenance des installations de chauffage et de climatisation"),
            reference: Some("CHV-2025-MC-09"),
            procedure: Some("negotiated"),
            deadline: Some("2025-06-05 16:00"),
            initial: Some("3 years"),
            total: None,
            lots: vec![
                "1|Chaufferies centrales||",
                "2|Climatisation des blocs opératoires||",
                "3|Ventilation||",
            ],
            criteria: vec![
                "Valeur technique|50",
                "Prix|40",
                "Performances environnementales|10",
            ],
            cpv: vec![],
            site_visit: None,
            variants: Some(true),
            lot_visits: vec!["2:true"],
            lot_variants: vec![],
            guarantees: vec![],
        },
    }
}
