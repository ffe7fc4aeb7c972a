//! Tender documents for the `requirements` profile, written here with what a reader finds in
//! them: French CCTP, CCAP and RC, an English invitation to tender and an English
//! specification. Each has running headers and footers, sentences cut by a page break,
//! sentences repeated in two sections, tables, lists, and sentences that are not
//! requirements (permissions, advice, waivers, statements, headings).
//!
//! Pages are text as `pdftotext -layout` gives it: a table's cells three spaces or more
//! apart, a wrapped cell aligned under its cell. Latin-1 only (the test PDF writer's
//! Helvetica), so no euro sign and straight apostrophes.
#![allow(dead_code)]

/// A requirement a reader finds in a document.
pub struct Expected {
    /// Its text, spaces collapsed (a table row's cells joined by ` | `).
    pub text: &'static str,
    /// The number of the section of each place it is written, in order.
    pub sections: &'static [&'static str],
    /// `technical`, `administrative`, `financial` or `legal`.
    pub category: &'static str,
}

/// A document of the corpus.
pub struct Doc {
    /// A file name without extension.
    pub name: &'static str,
    /// Its pages' text.
    pub pages: Vec<String>,
    /// Its requirements, in order of first occurrence.
    pub expected: Vec<Expected>,
    /// Requirements whose text runs over a page break.
    pub broken: Vec<&'static str>,
}

const fn req(
    text: &'static str,
    sections: &'static [&'static str],
    category: &'static str,
) -> Expected {
    Expected {
        text,
        sections,
        category,
    }
}

/// Pages from their bodies, each between a running header and a footer with its number.
fn framed(header: &str, footer: &str, bodies: &[&str]) -> Vec<String> {
    let n = bodies.len();
    bodies
        .iter()
        .enumerate()
        .map(|(i, body)| {
            format!(
                "{header}\n\n{}\n\n{footer}\nPage {}/{n}",
                body.trim_matches('\n'),
                i + 1
            )
        })
        .collect()
}

pub fn corpus() -> Vec<Doc> {
    vec![cctp(), ccap(), rc(), itt(), specification()]
}

/// A French CCTP: numbered sections, a table of requirements, a list with its lead.
fn cctp() -> Doc {
    let pages = framed(
        "CCTP - Maintenance des installations de chauffage",
        "Ville de Rouvray - DCE 2025-031",
        &[
            "
CAHIER DES CLAUSES TECHNIQUES PARTICULIERES

1. Objet du marché
Le présent marché porte sur la maintenance des installations de chauffage
des bâtiments communaux.
Le titulaire doit assurer la maintenance préventive et corrective de
l'ensemble des chaudières listées en annexe 1.

2. Description des installations
2.1 Chaufferies
Les chaufferies sont équipées de chaudières à condensation.
Le titulaire peut proposer le remplacement des brûleurs les plus anciens.
Les interventions devront être réalisées par un technicien qualifié,
titulaire d'une habilitation électrique en cours de validité.

2.2 Conditions d'exécution
Le titulaire est tenu de respecter les normes NF EN 15378 relatives à
l'inspection des systèmes de chauffage. Il est recommandé de prévoir un
stock de pièces détachées. Le titulaire doit remettre un rapport
d'intervention après chaque visite, signé par le technicien et par le
représentant de la commune. Le titulaire doit tenir à jour le livret de
chaufferie de chaque installation, conformément à l'art. R. 224-34 du
code de l'environnement, et le présenter",
            "
à toute demande du maître d'ouvrage.
La visite préalable des chaufferies n'est pas obligatoire.

3. Exigences techniques
Le tableau ci-dessous précise les exigences applicables aux équipements.

Réf.      Exigence                                  Niveau
EX-01     Les pièces de rechange sont d'origine     Obligatoire
          constructeur.
EX-02     Le délai d'intervention est de 4 heures   Obligatoire
          en période de chauffe.
EX-03     Une télégestion des chaudières est        Facultatif
          proposée.

3.1 Sécurité
Le titulaire doit assurer la maintenance préventive et corrective de
l'ensemble des chaudières listées en annexe 1.
Pour des raisons de sécurité, les intervenants ne doivent pas intervenir
seuls dans les chaufferies situées en sous-sol.",
            "
4. Dispositions administratives et financières
4.1 Rapports
Le titulaire doit :
- transmettre chaque mois un rapport d'activité au responsable du marché ;
- signaler par écrit toute anomalie constatée sur les installations.
Ces documents peuvent être transmis par voie électronique.

4.2 Facturation
Les factures devront être déposées sur la plateforme Chorus Pro et
mentionner le numéro du bon de commande.
Les pénalités de retard sont calculées conformément à l'article 14 du CCAP.

4.3 Assurances
Le titulaire doit justifier d'une assurance responsabilité civile
professionnelle couvrant les dommages causés aux tiers. Il appartient au
titulaire de vérifier la conformité des installations électriques avant
toute intervention sur les chaudières et de consigner le résultat de",
            "
ces vérifications dans le livret de chaufferie.

5. Confidentialité
Le titulaire s'engage à garder confidentielles les informations dont il
a connaissance à l'occasion de l'exécution du marché.
Les données personnelles des usagers doivent être traitées conformément
au RGPD.
Le titulaire n'est pas tenu de fournir les plans des bâtiments.",
        ],
    );
    Doc {
        name: "cctp-chauffage",
        pages,
        expected: vec![
            req(
                "Le titulaire doit assurer la maintenance préventive et corrective de l'ensemble des chaudières listées en annexe 1.",
                &["1", "3.1"],
                "technical",
            ),
            req(
                "Les interventions devront être réalisées par un technicien qualifié, titulaire d'une habilitation électrique en cours de validité.",
                &["2.1"],
                "technical",
            ),
            req(
                "Le titulaire est tenu de respecter les normes NF EN 15378 relatives à l'inspection des systèmes de chauffage.",
                &["2.2"],
                "technical",
            ),
            req(
                "Le titulaire doit remettre un rapport d'intervention après chaque visite, signé par le technicien et par le représentant de la commune.",
                &["2.2"],
                "administrative",
            ),
            req(
                "Le titulaire doit tenir à jour le livret de chaufferie de chaque installation, conformément à l'art. R. 224-34 du code de l'environnement, et le présenter à toute demande du maître d'ouvrage.",
                &["2.2"],
                "technical",
            ),
            req(
                "EX-01 | Les pièces de rechange sont d'origine constructeur. | Obligatoire",
                &["3"],
                "technical",
            ),
            req(
                "EX-02 | Le délai d'intervention est de 4 heures en période de chauffe. | Obligatoire",
                &["3"],
                "technical",
            ),
            req(
                "Pour des raisons de sécurité, les intervenants ne doivent pas intervenir seuls dans les chaufferies situées en sous-sol.",
                &["3.1"],
                "technical",
            ),
            req(
                "transmettre chaque mois un rapport d'activité au responsable du marché ;",
                &["4.1"],
                "administrative",
            ),
            req(
                "signaler par écrit toute anomalie constatée sur les installations.",
                &["4.1"],
                "technical",
            ),
            req(
                "Les factures devront être déposées sur la plateforme Chorus Pro et mentionner le numéro du bon de commande.",
                &["4.2"],
                "financial",
            ),
            req(
                "Le titulaire doit justifier d'une assurance responsabilité civile professionnelle couvrant les dommages causés aux tiers.",
                &["4.3"],
                "legal",
            ),
            req(
                "Il appartient au titulaire de vérifier la conformité des installations électriques avant toute intervention sur les chaudières et de consigner le résultat de ces vérifications dans le livret de chaufferie.",
                &["4.3"],
                "technical",
            ),
            req(
                "Le titulaire s'engage à garder confidentielles les informations dont il a connaissance à l'occasion de l'exécution du marché.",
                &["5"],
                "legal",
            ),
            req(
                "Les données personnelles des usagers doivent être traitées conformément au RGPD.",
                &["5"],
                "legal",
            ),
        ],
        broken: vec![
            "Le titulaire doit tenir à jour le livret de chaufferie de chaque installation, conformément à l'art. R. 224-34 du code de l'environnement, et le présenter à toute demande du maître d'ouvrage.",
            "Il appartient au titulaire de vérifier la conformité des installations électriques avant toute intervention sur les chaudières et de consigner le résultat de ces vérifications dans le livret de chaufferie.",
        ],
    }
}

/// A French CCAP: `ARTICLE n - TITRE` headings, prices, penalties, insurance.
fn ccap() -> Doc {
    let pages = framed(
        "Marché de travaux n° 2025-T-07",
        "CCAP - Réhabilitation du groupe scolaire Jean Moulin",
        &[
            "
CAHIER DES CLAUSES ADMINISTRATIVES PARTICULIERES

ARTICLE 1 - OBJET ET DURÉE
Le marché a pour objet la réhabilitation du groupe scolaire Jean Moulin.
Les travaux devront être achevés dans un délai de huit mois à compter de
la notification de l'ordre de service de démarrage.

ARTICLE 2 - PIÈCES CONSTITUTIVES
Les pièces constitutives du marché sont, par ordre de priorité :
- l'acte d'engagement ;
- le présent CCAP ;
- le CCTP et ses annexes.
En cas de contradiction, les stipulations de l'acte d'engagement prévalent.

ARTICLE 3 - PRIX ET RÈGLEMENT
3.1 Forme des prix
Les prix sont fermes et non actualisables. Le titulaire est tenu
d'indiquer ses prix en euros hors taxes et toutes taxes comprises.
3.2 Avance
Une avance de 5 % peut être versée au titulaire sur sa demande.
3.3 Paiement
Le délai global de paiement est fixé à 30 jours. Les demandes de
paiement doivent obligatoirement être accompagnées d'un état d'avancement
des travaux visé par le maître d'oeuvre.",
            "
ARTICLE 4 - PÉNALITÉS
En cas de retard dans l'exécution des travaux, le titulaire subit une
pénalité journalière de 300 euros HT, sans mise en demeure préalable.
Le titulaire doit informer le maître d'ouvrage de tout retard prévisible
dans un délai de 48 heures.
Les pénalités ne sont pas plafonnées.

ARTICLE 5 - ASSURANCES
Avant tout commencement d'exécution, le titulaire doit justifier qu'il
est titulaire d'une assurance de responsabilité décennale et d'une
assurance responsabilité civile. Les attestations d'assurance devront
être produites chaque année à la date anniversaire du marché, sur
simple demande du maître d'ouvrage, et au plus tard dans les quinze jours
suivant cette demande, faute de quoi le marché pourra être résilié aux
torts du titulaire après mise en demeure restée sans effet pendant un
délai de quinze jours, conformément aux stipulations du CCAG Travaux et
sans que le titulaire puisse prétendre à une indemnité",
            "
au titre de cette résiliation.

ARTICLE 6 - SOUS-TRAITANCE
Le titulaire ne doit en aucun cas sous-traiter la totalité du marché.
Chaque sous-traitant doit être accepté et ses conditions de paiement
agréées par le maître d'ouvrage avant tout commencement d'exécution.
Le titulaire doit informer le maître d'ouvrage de tout retard prévisible
dans un délai de 48 heures.

ARTICLE 7 - LITIGES
Tout litige relatif à l'exécution du marché relève du tribunal
administratif de Lyon. Les parties doivent rechercher un règlement
amiable avant toute saisine du tribunal.
Le recours à la médiation est facultatif.",
        ],
    );
    Doc {
        name: "ccap-travaux",
        pages,
        expected: vec![
            req(
                "Les travaux devront être achevés dans un délai de huit mois à compter de la notification de l'ordre de service de démarrage.",
                &["1"],
                "administrative",
            ),
            req(
                "Le titulaire est tenu d'indiquer ses prix en euros hors taxes et toutes taxes comprises.",
                &["3.1"],
                "financial",
            ),
            req(
                "Les demandes de paiement doivent obligatoirement être accompagnées d'un état d'avancement des travaux visé par le maître d'oeuvre.",
                &["3.3"],
                "financial",
            ),
            req(
                "Le titulaire doit informer le maître d'ouvrage de tout retard prévisible dans un délai de 48 heures.",
                &["4", "6"],
                "administrative",
            ),
            req(
                "Avant tout commencement d'exécution, le titulaire doit justifier qu'il est titulaire d'une assurance de responsabilité décennale et d'une assurance responsabilité civile.",
                &["5"],
                "legal",
            ),
            req(
                "Les attestations d'assurance devront être produites chaque année à la date anniversaire du marché, sur simple demande du maître d'ouvrage, et au plus tard dans les quinze jours suivant cette demande, faute de quoi le marché pourra être résilié aux torts du titulaire après mise en demeure restée sans effet pendant un délai de quinze jours, conformément aux stipulations du CCAG Travaux et sans que le titulaire puisse prétendre à une indemnité au titre de cette résiliation.",
                &["5"],
                "legal",
            ),
            req(
                "Le titulaire ne doit en aucun cas sous-traiter la totalité du marché.",
                &["6"],
                "legal",
            ),
            req(
                "Chaque sous-traitant doit être accepté et ses conditions de paiement agréées par le maître d'ouvrage avant tout commencement d'exécution.",
                &["6"],
                "legal",
            ),
            req(
                "Les parties doivent rechercher un règlement amiable avant toute saisine du tribunal.",
                &["7"],
                "legal",
            ),
        ],
        broken: vec![
            "Les attestations d'assurance devront être produites chaque année à la date anniversaire du marché, sur simple demande du maître d'ouvrage, et au plus tard dans les quinze jours suivant cette demande, faute de quoi le marché pourra être résilié aux torts du titulaire après mise en demeure restée sans effet pendant un délai de quinze jours, conformément aux stipulations du CCAG Travaux et sans que le titulaire puisse prétendre à une indemnité au titre de cette résiliation.",
        ],
    }
}

/// A French règlement de la consultation: what candidates must hand in, a table of documents.
fn rc() -> Doc {
    let pages = framed(
        "RC - Fourniture de mobilier scolaire",
        "Communauté de communes du Val Vert",
        &[
            "
REGLEMENT DE LA CONSULTATION

Article 1 : Objet de la consultation
La consultation porte sur la fourniture et la livraison de mobilier
scolaire pour les écoles de la communauté de communes.
Les candidats peuvent répondre à un ou plusieurs lots.

Article 2 : Conditions de la consultation
2.1 Visite des locaux
La visite des écoles n'est pas obligatoire. Les candidats qui le
souhaitent peuvent prendre rendez-vous auprès du secrétariat.
2.2 Variantes
Les variantes ne sont pas autorisées.
2.3 Délai de validité des offres
Le délai de validité des offres est fixé à 120 jours à compter de la date
limite de remise des offres.

Article 3 : Contenu du dossier
Chaque candidat doit produire un dossier complet comprenant les pièces
suivantes, rédigées en langue française :

Pièce                             Exigence
DC1 ou DUME                       Obligatoire
Mémoire technique                 Obligatoire
Catalogue des produits            Facultatif",
            "
Les candidats ne sont pas tenus de fournir des échantillons au stade de
la remise des offres.
Le mémoire technique doit présenter les caractéristiques du mobilier
proposé et les délais de livraison.

Article 4 : Remise des offres
La remise des offres est obligatoirement dématérialisée sur la plateforme
des achats publics du département. Les offres doivent parvenir avant le
15 mai 2025 à 12h00. Les offres reçues après cette date ne seront pas
examinées.
Chaque candidat doit produire un dossier complet comprenant les pièces
suivantes, rédigées en langue française :
Les candidats peuvent poser leurs questions jusqu'à dix jours avant la
date limite.

Article 5 : Jugement des offres
Les offres sont jugées selon les critères suivants : prix (40 %) et valeur
technique (60 %).
Le mobilier livré doit être conforme à la norme NF EN 1729 relative au
mobilier scolaire.",
            "
Article 6 : Échantillons
Le candidat retenu doit livrer un échantillon de chaque modèle de chaise
dans les quinze jours suivant la demande de l'acheteur, à ses frais et
sans pouvoir prétendre à une indemnisation.
Article 7 : Renseignements
Les demandes de renseignements doivent être posées par écrit sur la
plateforme.",
        ],
    );
    Doc {
        name: "rc-mobilier",
        pages,
        expected: vec![
            req(
                "Chaque candidat doit produire un dossier complet comprenant les pièces suivantes, rédigées en langue française :",
                &["3", "4"],
                "administrative",
            ),
            req("DC1 ou DUME | Obligatoire", &["3"], "administrative"),
            req("Mémoire technique | Obligatoire", &["3"], "administrative"),
            req(
                "Le mémoire technique doit présenter les caractéristiques du mobilier proposé et les délais de livraison.",
                &["3"],
                "administrative",
            ),
            req(
                "La remise des offres est obligatoirement dématérialisée sur la plateforme des achats publics du département.",
                &["4"],
                "administrative",
            ),
            req(
                "Les offres doivent parvenir avant le 15 mai 2025 à 12h00.",
                &["4"],
                "administrative",
            ),
            req(
                "Le mobilier livré doit être conforme à la norme NF EN 1729 relative au mobilier scolaire.",
                &["5"],
                "technical",
            ),
            req(
                "Le candidat retenu doit livrer un échantillon de chaque modèle de chaise dans les quinze jours suivant la demande de l'acheteur, à ses frais et sans pouvoir prétendre à une indemnisation.",
                &["6"],
                "technical",
            ),
            req(
                "Les demandes de renseignements doivent être posées par écrit sur la plateforme.",
                &["7"],
                "administrative",
            ),
        ],
        broken: vec![],
    }
}

/// An English invitation to tender: `Section n: Title` headings, shall and must, a table.
fn itt() -> Doc {
    let pages = framed(
        "Invitation to Tender - Managed Hosting Services",
        "Northfield County Council - Ref NCC/ITT/2025/118",
        &[
            "
INVITATION TO TENDER

Section 1: Introduction
Northfield County Council invites tenders for managed hosting services
for its case management application.
Tenderers should read this document in full before preparing a bid.

Section 2: Instructions to Tenderers
2.1 Submission
Tenders must be submitted through the Council's e-tendering portal no
later than 12:00 on 30 June 2025. Late submissions will not be
considered. Tenderers may submit clarification questions until 16 June.
A site visit is not required.
2.2 Format
Each response shall be written in English and shall not exceed twenty
pages per section.

Section 3: Specification
3.1 Hosting
The Supplier shall host the application in data centres located in the
United Kingdom. The Supplier shall provide an availability of at least
99.9 % per calendar month, measured as set out in Schedule 4, excluding
planned maintenance windows agreed in advance with the Council, e.g.",
            "
for operating system upgrades.

Requirement                                     Priority
Daily backups kept for thirty days              Mandatory
Encryption of data at rest and in transit       Mandatory
A dedicated service manager                     Desirable

3.2 Security
The Supplier must hold a current ISO/IEC 27001 certification covering
the hosting service. The Supplier is required to notify the Council of
any security incident within 24 hours. Penetration testing should be
carried out by an accredited third party.

Section 4: Delivery
The Supplier shall complete the migration of the application within
twelve weeks of the contract award. The Council may extend this period
at its discretion.",
            "
Section 5: Commercial
Prices must be quoted in pounds sterling, exclusive of VAT. Invoices
shall be submitted monthly in arrears and will be paid within 30 days.
Tenderers need not submit a separate pricing schedule for options.

Section 6: Legal
The Supplier shall comply with the UK GDPR and the Data Protection Act
2018 when processing personal data on behalf of the Council.
The Supplier shall not subcontract any part of the services without the
prior written consent of the Council.
The Supplier must hold a current ISO/IEC 27001 certification covering
the hosting service.",
        ],
    );
    Doc {
        name: "itt-hosting",
        pages,
        expected: vec![
            req(
                "Tenders must be submitted through the Council's e-tendering portal no later than 12:00 on 30 June 2025.",
                &["2.1"],
                "administrative",
            ),
            req(
                "Each response shall be written in English and shall not exceed twenty pages per section.",
                &["2.2"],
                "administrative",
            ),
            req(
                "The Supplier shall host the application in data centres located in the United Kingdom.",
                &["3.1"],
                "technical",
            ),
            req(
                "The Supplier shall provide an availability of at least 99.9 % per calendar month, measured as set out in Schedule 4, excluding planned maintenance windows agreed in advance with the Council, e.g. for operating system upgrades.",
                &["3.1"],
                "technical",
            ),
            req(
                "Daily backups kept for thirty days | Mandatory",
                &["3.1"],
                "technical",
            ),
            req(
                "Encryption of data at rest and in transit | Mandatory",
                &["3.1"],
                "technical",
            ),
            req(
                "The Supplier must hold a current ISO/IEC 27001 certification covering the hosting service.",
                &["3.2", "6"],
                "technical",
            ),
            req(
                "The Supplier is required to notify the Council of any security incident within 24 hours.",
                &["3.2"],
                "technical",
            ),
            req(
                "The Supplier shall complete the migration of the application within twelve weeks of the contract award.",
                &["4"],
                "technical",
            ),
            req(
                "Prices must be quoted in pounds sterling, exclusive of VAT.",
                &["5"],
                "financial",
            ),
            req(
                "Invoices shall be submitted monthly in arrears and will be paid within 30 days.",
                &["5"],
                "financial",
            ),
            req(
                "The Supplier shall comply with the UK GDPR and the Data Protection Act 2018 when processing personal data on behalf of the Council.",
                &["6"],
                "legal",
            ),
            req(
                "The Supplier shall not subcontract any part of the services without the prior written consent of the Council.",
                &["6"],
                "legal",
            ),
        ],
        broken: vec![
            "The Supplier shall provide an availability of at least 99.9 % per calendar month, measured as set out in Schedule 4, excluding planned maintenance windows agreed in advance with the Council, e.g. for operating system upgrades.",
        ],
    }
}

/// An English specification: decimal headings, a lettered list with its lead, a drawn table.
fn specification() -> Doc {
    let pages = framed(
        "Technical Specification - Street Lighting Renewal",
        "Issue 3 - March 2025",
        &[
            "
1. Scope
This specification covers the supply and installation of LED luminaires
on the county road network.

2. Luminaires
2.1 General
All luminaires shall comply with BS EN 60598 and carry the UKCA mark.
Luminaires must have a rated life of at least 100 000 hours at 25 C.
Where practicable, luminaires should use recycled aluminium housings.
2.2 Optics
The Contractor shall:
(a) submit lighting calculations for each road class;
(b) provide photometric data in EUMULNET format.
The Council will review the calculations within ten working days.

3. Installation
3.1 Works on the highway
All works on the highway shall be carried out in accordance with the
Safety at Street Works and Road Works Code of Practice. The Contractor
must not leave excavations unattended without barriers, i.e. at any
time when operatives are away from the site. Traffic management is the
responsibility of the Council.",
            "
3.2 Electrical connections
All electrical connections shall be tested and certified by a qualified
electrician before energising.
All works on the highway shall be carried out in accordance with the
Safety at Street Works and Road Works Code of Practice.

4. Commercial terms
| Item | Condition                                  | Status     |
|------|--------------------------------------------|------------|
| 4.a  | Liquidated damages of 150 pounds per day   | Mandatory  |
| 4.b  | Extended warranty offer                    | Optional   |

The Contractor shall maintain public liability insurance of not less
than 10 million pounds for the duration of the contract.
A performance bond is not mandatory for this contract.
Any dispute shall be referred to the courts of England and Wales.",
        ],
    );
    Doc {
        name: "spec-lighting",
        pages,
        expected: vec![
            req(
                "All luminaires shall comply with BS EN 60598 and carry the UKCA mark.",
                &["2.1"],
                "technical",
            ),
            req(
                "Luminaires must have a rated life of at least 100 000 hours at 25 C.",
                &["2.1"],
                "technical",
            ),
            req(
                "submit lighting calculations for each road class;",
                &["2.2"],
                "technical",
            ),
            req(
                "provide photometric data in EUMULNET format.",
                &["2.2"],
                "technical",
            ),
            req(
                "All works on the highway shall be carried out in accordance with the Safety at Street Works and Road Works Code of Practice.",
                &["3.1", "3.2"],
                "technical",
            ),
            req(
                "The Contractor must not leave excavations unattended without barriers, i.e. at any time when operatives are away from the site.",
                &["3.1"],
                "technical",
            ),
            req(
                "All electrical connections shall be tested and certified by a qualified electrician before energising.",
                &["3.2"],
                "technical",
            ),
            req(
                "4.a | Liquidated damages of 150 pounds per day | Mandatory",
                &["4"],
                "financial",
            ),
            req(
                "The Contractor shall maintain public liability insurance of not less than 10 million pounds for the duration of the contract.",
                &["4"],
                "legal",
            ),
            req(
                "Any dispute shall be referred to the courts of England and Wales.",
                &["4"],
                "legal",
            ),
        ],
        broken: vec![],
    }
}
