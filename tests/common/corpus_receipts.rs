//! Receipts written in code, laid out as tills print them (columns aligned with spaces), each
//! with what a reader would extract from it. Latin-1 and € only, so that every receipt can be
//! set in a PDF's Helvetica and rendered for OCR: [`Receipt::lines`] gives each line.
#![allow(dead_code)]

/// One VAT line: rate in percent, base, amount.
#[derive(Debug, Clone, Copy)]
pub struct Vat {
    pub rate: Option<f64>,
    pub base: Option<f64>,
    pub amount: f64,
}

/// One item: label, quantity, unit, unit price, line total.
#[derive(Debug, Clone, Copy)]
pub struct Item {
    pub label: &'static str,
    pub quantity: Option<f64>,
    pub unit: Option<&'static str>,
    pub unit_price: Option<f64>,
    pub total: f64,
}

/// A receipt and what it says.
#[derive(Debug, Clone)]
pub struct Receipt {
    /// A short name, for file names and messages.
    pub name: &'static str,
    /// Its text.
    pub text: &'static str,
    pub merchant: &'static str,
    pub date: &'static str,
    pub time: Option<&'static str>,
    pub total: f64,
    pub currency: &'static str,
    pub vat: Vec<Vat>,
    /// Other taxes: label and amount.
    pub other_taxes: Vec<(&'static str, f64)>,
    pub items: Vec<Item>,
    pub payment: &'static str,
    pub change: Option<f64>,
}

impl Receipt {
    /// Its lines, as a renderer sets them one under the other.
    pub fn lines(&self) -> Vec<&'static str> {
        self.text.lines().collect()
    }
}

fn vat(rate: f64, base: f64, amount: f64) -> Vat {
    Vat {
        rate: Some(rate),
        base: Some(base),
        amount,
    }
}

fn item(label: &'static str, total: f64) -> Item {
    Item {
        label,
        quantity: None,
        unit: None,
        unit_price: None,
        total,
    }
}

fn times(label: &'static str, quantity: f64, unit_price: f64, total: f64) -> Item {
    Item {
        quantity: Some(quantity),
        unit_price: Some(unit_price),
        ..item(label, total)
    }
}

fn measured(label: &'static str, q: f64, unit: &'static str, price: f64, total: f64) -> Item {
    Item {
        unit: Some(unit),
        ..times(label, q, price, total)
    }
}

/// Every receipt of the corpus.
pub fn receipts() -> Vec<Receipt> {
    vec![
        Receipt {
            name: "supermarket",
            text: "\
           TICKET DE CAISSE
        SUPERMARCHE DES HALLES
     14 avenue de la République
              69003 LYON
         Tél : 04 72 11 22 33
       SIRET 412 345 678 00021
15/03/2025 14:32   Caisse 04   Ticket 0187

BAGUETTE TRADITION              1,10 A
LAIT DEMI-ECREME 1L             0,99 A
COCA COLA 1,5L
   2 x 1,85                     3,70 B
TOMATES GRAPPE
   0,756 kg x 3,99 EUR/kg       3,02 A
LESSIVE LIQUIDE 2L              8,49 B
                           -----------
SOUS-TOTAL                     17,30
TOTAL TTC                      17,30 EUR
CB                             17,30 EUR

TVA    Taux       HT      TVA      TTC
A      5,50%     4,84     0,27     5,11
B     20,00%    10,16     2,03    12,19
Total           15,00     2,30    17,30
Nombre d'articles : 6
      Merci de votre visite
",
            merchant: "SUPERMARCHE DES HALLES",
            date: "2025-03-15",
            time: Some("14:32"),
            total: 17.30,
            currency: "EUR",
            vat: vec![vat(5.5, 4.84, 0.27), vat(20.0, 10.16, 2.03)],
            other_taxes: vec![],
            items: vec![
                item("BAGUETTE TRADITION", 1.10),
                item("LAIT DEMI-ECREME 1L", 0.99),
                times("COCA COLA 1,5L", 2.0, 1.85, 3.70),
                measured("TOMATES GRAPPE", 0.756, "kg", 3.99, 3.02),
                item("LESSIVE LIQUIDE 2L", 8.49),
            ],
            payment: "card",
            change: None,
        },
        Receipt {
            name: "superette",
            text: "\
            PROXI SUPER
         3 place du Marché
          33000 BORDEAUX
      Le 02/04/2025 à 09h47
--------------------------------
PAIN DE MIE                 1,65
BEURRE DOUX 250G            2,39
OEUFS X6                    2,10
CAFE MOULU 250G             3,49
JUS D'ORANGE 1L             1,98
--------------------------------
TOTAL                      11,61 €
ESPECES                    20,00 €
RENDU                       8,39 €
--------------------------------
 Code    HT      TVA    Taux
  1     11,00    0,61   5,5%
",
            merchant: "PROXI SUPER",
            date: "2025-04-02",
            time: Some("09:47"),
            total: 11.61,
            currency: "EUR",
            vat: vec![vat(5.5, 11.00, 0.61)],
            other_taxes: vec![],
            items: vec![
                item("PAIN DE MIE", 1.65),
                item("BEURRE DOUX 250G", 2.39),
                item("OEUFS X6", 2.10),
                item("CAFE MOULU 250G", 3.49),
                item("JUS D'ORANGE 1L", 1.98),
            ],
            payment: "cash",
            change: Some(8.39),
        },
        Receipt {
            name: "fuel",
            text: "\
            STATION AVIA
         Relais des Sablons
       RN 7 - 45200 AMILLY
        Tel 02 38 85 12 34

Date : 21/03/2025      Heure : 18:05
Pompe n° 3
Carburant SP95  42,35 L x 1,859 EUR/L    78,73

TOTAL TTC                      78,73 EUR
dont TVA 20,00 %               13,12 EUR
Paiement CB sans contact
CARTE BANCAIRE                 78,73 EUR
       A bientôt sur la route
",
            merchant: "STATION AVIA",
            date: "2025-03-21",
            time: Some("18:05"),
            total: 78.73,
            currency: "EUR",
            vat: vec![Vat {
                rate: Some(20.0),
                base: None,
                amount: 13.12,
            }],
            other_taxes: vec![],
            items: vec![measured("Carburant SP95", 42.35, "L", 1.859, 78.73)],
            payment: "card",
            change: None,
        },
        Receipt {
            name: "hotel",
            text: "\
                HOTEL DU LAC
            8 quai du Mont-Blanc
               74000 ANNECY
           Tél. +33 4 50 12 34 56
         SIRET 512 987 654 00018

FACTURE N° 2025-0412
Date : 14/03/2025
Client : M. Dupont
Arrivée : 12/03/2025      Départ : 14/03/2025

Désignation                                   Montant
Chambre double        2 nuits x 95,00         190,00
Petit-déjeuner        4 x 12,50                50,00
Taxe de séjour        4 x 1,65                  6,60
                                            --------
Total HT                                      218,18
TVA 10,00 %           218,18                   21,82
Total TTC                                     246,60 €
Réglé par carte bancaire le 14/03/2025
",
            merchant: "HOTEL DU LAC",
            date: "2025-03-14",
            time: None,
            total: 246.60,
            currency: "EUR",
            vat: vec![vat(10.0, 218.18, 21.82)],
            other_taxes: vec![("Taxe de séjour", 6.60)],
            items: vec![
                measured("Chambre double", 2.0, "night", 95.0, 190.0),
                times("Petit-déjeuner", 4.0, 12.5, 50.0),
            ],
            payment: "card",
            change: None,
        },
        Receipt {
            name: "restaurant",
            text: "\
          LE BISTROT DES AMIS
    27 rue des Martyrs 75009 Paris
          Tél. 01 48 78 12 34
Table 12      Couverts 2     Serveur : Julie
Le 08/03/2025 à 20:47

2 Menu du jour            16,50     33,00
1 Pichet vin rouge 50cl   12,00     12,00
2 Café                     2,20      4,40
1 Eau minérale 1L          4,50      4,50
                                 ---------
TOTAL TTC                           53,90 €
TVA 10,00 %    HT 38,09    TVA 3,81
TVA 20,00 %    HT 10,00    TVA 2,00
ESPECES                             60,00 €
RENDU MONNAIE                        6,10 €
        Merci de votre visite !
",
            merchant: "LE BISTROT DES AMIS",
            date: "2025-03-08",
            time: Some("20:47"),
            total: 53.90,
            currency: "EUR",
            vat: vec![vat(10.0, 38.09, 3.81), vat(20.0, 10.0, 2.0)],
            other_taxes: vec![],
            items: vec![
                times("Menu du jour", 2.0, 16.5, 33.0),
                times("Pichet vin rouge 50cl", 1.0, 12.0, 12.0),
                times("Café", 2.0, 2.2, 4.4),
                times("Eau minérale 1L", 1.0, 4.5, 4.5),
            ],
            payment: "cash",
            change: Some(6.10),
        },
        Receipt {
            name: "uk-shop",
            text: "\
          THE CORNER SHOP
           42 High Street
          Oxford OX1 4AP
       VAT No. GB 123 4567 89
        Tel: 01865 123456

Date: 15/03/2025      Time: 11:08
-----------------------------------
Milk 2 Pints                  £1.55
Sourdough Loaf                £3.20
Cheddar 400g                  £4.75
2 x Orange Juice 1L           £3.60
Bananas 1.2 kg @ £0.95/kg     £1.14
-----------------------------------
TOTAL                        £14.24
Card payment                 £14.24
Change due                    £0.00

VAT Rate     Net      VAT     Gross
Z   0.0%    10.64     0.00    10.64
S  20.0%     3.00     0.60     3.60
      Thank you for shopping!
",
            merchant: "THE CORNER SHOP",
            date: "2025-03-15",
            time: Some("11:08"),
            total: 14.24,
            currency: "GBP",
            vat: vec![vat(0.0, 10.64, 0.0), vat(20.0, 3.0, 0.6)],
            other_taxes: vec![],
            items: vec![
                item("Milk 2 Pints", 1.55),
                item("Sourdough Loaf", 3.20),
                item("Cheddar 400g", 4.75),
                Item {
                    quantity: Some(2.0),
                    ..item("Orange Juice 1L", 3.60)
                },
                measured("Bananas", 1.2, "kg", 0.95, 1.14),
            ],
            payment: "card",
            change: Some(0.0),
        },
        Receipt {
            name: "us-market",
            text: "\
        GREEN VALLEY MARKET
          1450 Oak Avenue
        Portland, OR 97205
          (503) 555-0142

03/14/2025   4:27 PM   Reg 2   Trans 8841
ORGANIC APPLES 2.5 lb @ 1.99/lb     4.98
WHOLE MILK 1 GAL                    4.29
SOURDOUGH BREAD                     5.49
PAPER TOWELS 6 PK                   8.99
SPARKLING WATER
   2 @ 3.49                         6.98
SUBTOTAL                           30.73
SALES TAX 8.25%                     1.32
TOTAL                             $32.05
VISA ************1234             $32.05
     Thank you for shopping with us!
",
            merchant: "GREEN VALLEY MARKET",
            date: "2025-03-14",
            time: Some("16:27"),
            total: 32.05,
            currency: "USD",
            vat: vec![],
            other_taxes: vec![("SALES TAX", 1.32)],
            items: vec![
                measured("ORGANIC APPLES", 2.5, "lb", 1.99, 4.98),
                item("WHOLE MILK 1 GAL", 4.29),
                item("SOURDOUGH BREAD", 5.49),
                item("PAPER TOWELS 6 PK", 8.99),
                times("SPARKLING WATER", 2.0, 3.49, 6.98),
            ],
            payment: "card",
            change: None,
        },
        Receipt {
            name: "bakery",
            text: "\
   BOULANGERIE PATISSERIE MARTIN
  5, rue Victor Hugo - 37000 TOURS

Ticket n° 000452
Samedi 15 mars 2025          12:04

SANDWICH JAMBON BEURRE        4,50
FLAN PATISSIER                2,80
EAU PLATE 50CL                1,20

NET A PAYER                   8,50 EUR
TITRE RESTAURANT              8,50 EUR

Taux     Base HT    Montant TVA
10,0%       4,09        0,41
 5,5%       3,79        0,21
",
            merchant: "BOULANGERIE PATISSERIE MARTIN",
            date: "2025-03-15",
            time: Some("12:04"),
            total: 8.50,
            currency: "EUR",
            vat: vec![vat(10.0, 4.09, 0.41), vat(5.5, 3.79, 0.21)],
            other_taxes: vec![],
            items: vec![
                item("SANDWICH JAMBON BEURRE", 4.50),
                item("FLAN PATISSIER", 2.80),
                item("EAU PLATE 50CL", 1.20),
            ],
            payment: "voucher",
            change: None,
        },
        Receipt {
            name: "pharmacy",
            text: "\
        PHARMACIE DU CENTRE
   Centre Commercial Les Arcades
      93160 NOISY-LE-GRAND

02/04/2025 10:15      Vendeur : 03
DOLIPRANE 1000MG CPR              2,18
SERUM PHYSIO 30 DOSES  2 x 2,95   5,90
CREME SOLAIRE SPF50              14,90
TOTAL A PAYER                    22,98 EUR
CHEQUE                           22,98

Taux TVA    Montant HT    TVA
 2,10 %         2,14      0,04
20,00 %        17,33      3,47
",
            merchant: "PHARMACIE DU CENTRE",
            date: "2025-04-02",
            time: Some("10:15"),
            total: 22.98,
            currency: "EUR",
            vat: vec![vat(2.1, 2.14, 0.04), vat(20.0, 17.33, 3.47)],
            other_taxes: vec![],
            items: vec![
                item("DOLIPRANE 1000MG CPR", 2.18),
                times("SERUM PHYSIO 30 DOSES", 2.0, 2.95, 5.90),
                item("CREME SOLAIRE SPF50", 14.90),
            ],
            payment: "cheque",
            change: None,
        },
        Receipt {
            name: "uk-cafe",
            text: "\
        THE BLUE DOOR CAFE
   7 Market Square, York YO1 8NR

15 March 2025                 13:22
Server: Tom        Table 4
1  Flat White                  3.20
1  Cappuccino                  3.40
2  Scone with jam     2.95     5.90
1  Tea for one                 2.50
TOTAL                        £15.00
Cash                         £20.00
Change                        £5.00
VAT included @ 20%            £2.50
",
            merchant: "THE BLUE DOOR CAFE",
            date: "2025-03-15",
            time: Some("13:22"),
            total: 15.00,
            currency: "GBP",
            vat: vec![Vat {
                rate: Some(20.0),
                base: None,
                amount: 2.50,
            }],
            other_taxes: vec![],
            items: vec![
                Item {
                    quantity: Some(1.0),
                    ..item("Flat White", 3.20)
                },
                Item {
                    quantity: Some(1.0),
                    ..item("Cappuccino", 3.40)
                },
                times("Scone with jam", 2.0, 2.95, 5.90),
                Item {
                    quantity: Some(1.0),
                    ..item("Tea for one", 2.50)
                },
            ],
            payment: "cash",
            change: Some(5.00),
        },
        Receipt {
            name: "hypermarket",
            text: "\
             E.LECLERC
      SAS VILLENEUVE DISTRIBUTION
      Route de Paris 77100 MEAUX
          TEL 01.60.09.12.34

Vendeur: 012   Caisse: 007   28/02/2025 19:12

JAMBON BLANC x4              3,25  1
YAOURT NATURE 8X125G         1,89  1
BIERE BLONDE 6X25CL          5,40  2
PROMO -20% BIERE            -1,08  2
SAC CABAS                    0,50  2
=======================================
   5 ARTICLES       MONTANT DU   9,96 EUR
   CARTE BANCAIRE                9,96 EUR
=======================================
  CODE   TAUX     HT     TVA     TTC
   1     5,50    4,87   0,27    5,14
   2    20,00    4,02   0,80    4,82
",
            merchant: "E.LECLERC",
            date: "2025-02-28",
            time: Some("19:12"),
            total: 9.96,
            currency: "EUR",
            vat: vec![vat(5.5, 4.87, 0.27), vat(20.0, 4.02, 0.80)],
            other_taxes: vec![],
            items: vec![
                item("JAMBON BLANC x4", 3.25),
                item("YAOURT NATURE 8X125G", 1.89),
                item("BIERE BLONDE 6X25CL", 5.40),
                item("PROMO -20% BIERE", -1.08),
                item("SAC CABAS", 0.50),
            ],
            payment: "card",
            change: None,
        },
        Receipt {
            name: "us-restaurant",
            text: "\
           MARIO'S TRATTORIA
  88 Mulberry St, New York, NY 10013
          Tel (212) 555-0199

Server: Anna        Table: 7      Guests: 2
Mar 22, 2025                        8:15 PM
Check #4471

1 Margherita Pizza                    18.00
1 Spaghetti Carbonara                 21.00
2 House Wine Glass      @ 12.00       24.00
1 Tiramisu                             9.00

Subtotal                              72.00
Tax 8.875%                             6.39
Total                                 78.39
MASTERCARD xxxx5521                  $78.39
",
            merchant: "MARIO'S TRATTORIA",
            date: "2025-03-22",
            time: Some("20:15"),
            total: 78.39,
            currency: "USD",
            vat: vec![],
            other_taxes: vec![("Tax", 6.39)],
            items: vec![
                Item {
                    quantity: Some(1.0),
                    ..item("Margherita Pizza", 18.00)
                },
                Item {
                    quantity: Some(1.0),
                    ..item("Spaghetti Carbonara", 21.00)
                },
                times("House Wine Glass", 2.0, 12.0, 24.0),
                Item {
                    quantity: Some(1.0),
                    ..item("Tiramisu", 9.00)
                },
            ],
            payment: "card",
            change: None,
        },
        Receipt {
            name: "city-store",
            text: "\
              MONOPRIX
        MONOPRIX SAINT-MICHEL
   24 bd Saint-Michel 75006 PARIS
          www.monoprix.fr

TICKET 0045 - CAISSE 12 - 07/03/2025 - 17:45

SALADE BATAVIA                       0,99 €
YAOURT GREC NATURE                   2,98 €
   2 X 1,49 €
POULET ROTI                          7,50 €
BOUTEILLE EAU 1,5L                   0,55 €
REMISE FIDELITE                     -0,75 €
                                ------------
SOUS-TOTAL                          11,27 €
TOTAL A PAYER                       11,27 €

PAIEMENT CB EMV                     11,27 €
VISA XXXXXXXXXXXX4321

TX TVA      MT HT     MT TVA    MT TTC
5,50%       10,68      0,59     11,27
",
            merchant: "MONOPRIX",
            date: "2025-03-07",
            time: Some("17:45"),
            total: 11.27,
            currency: "EUR",
            vat: vec![vat(5.5, 10.68, 0.59)],
            other_taxes: vec![],
            items: vec![
                item("SALADE BATAVIA", 0.99),
                times("YAOURT GREC NATURE", 2.0, 1.49, 2.98),
                item("POULET ROTI", 7.50),
                item("BOUTEILLE EAU 1,5L", 0.55),
                item("REMISE FIDELITE", -0.75),
            ],
            payment: "card",
            change: None,
        },
        Receipt {
            name: "uk-supermarket",
            text: "\
               TESCO
          Tesco Stores Ltd
       Kensington Superstore
           0345 677 9388
       VAT Number: 220430231

SEMI SKIMMED MILK 4PT         £1.45
BRITISH BEEF MINCE 500G       £3.75
HOVIS WHOLEMEAL 800G          £1.40
WALKERS CRISPS 6PK            £1.85
Clubcard Price Saving        -£0.35
LOOSE LEMONS
   3 @ £0.30                  £0.90
-----------------------------------
TOTAL                         £9.00
VISA DEBIT                    £9.00
CHANGE DUE                    £0.00

VAT   RATE     PRICE      VAT
Z      0%      £7.50     £0.00
A     20%      £1.50     £0.25

14/03/2025  18:22  Store 2541  Till 7
",
            merchant: "TESCO",
            date: "2025-03-14",
            time: Some("18:22"),
            total: 9.00,
            currency: "GBP",
            vat: vec![
                vat(0.0, 7.50, 0.0),
                Vat {
                    rate: Some(20.0),
                    base: None,
                    amount: 0.25,
                },
            ],
            other_taxes: vec![],
            items: vec![
                item("SEMI SKIMMED MILK 4PT", 1.45),
                item("BRITISH BEEF MINCE 500G", 3.75),
                item("HOVIS WHOLEMEAL 800G", 1.40),
                item("WALKERS CRISPS 6PK", 1.85),
                item("Clubcard Price Saving", -0.35),
                times("LOOSE LEMONS", 3.0, 0.30, 0.90),
            ],
            payment: "card",
            change: Some(0.0),
        },
    ]
}
