// The two small CSV files the job tests reconcile, the job's parameters, and the counts it must
// find: one of each outcome (match, mismatch, back-office only, partner only, duplicate key,
// rejected row), with the partner's French number and date formats.

import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';

const BO = ['id,amount,date', 'A1,10.50,2024-12-31', 'A2,20.00,2024-01-01', 'A3,5.00,2024-02-02',
  'A4,1,2024-03-03', 'A4,1,2024-03-03', 'bad,row'];
const PARTNER = ['id;amount;date', 'A1;10,50;31/12/2024', 'A2;21,00;01/01/2024', 'A5;7,00;05/05/2024',
  'A4;1;03/03/2024'];

/** The body of a `reconcile` SEND to `/app/jobs` over the files [`writeReconcileFiles`] writes. */
export const RECONCILE_PARAMS = JSON.stringify({ boFile: 'bo.csv', partnerFile: 'partner.csv', boKey: 'id', partnerKey: 'id' });

/** Writes `bo.csv` and `partner.csv` into a server's import directory (`<data-dir>/import`). */
export async function writeReconcileFiles(dataDir) {
  await writeFile(join(dataDir, 'import', 'bo.csv'), BO.join('\n') + '\n');
  await writeFile(join(dataDir, 'import', 'partner.csv'), PARTNER.join('\n') + '\n');
}

/**
 * A finished job's counts, in the order matches, mismatches, back-office only, partner only,
 * duplicate back-office keys, rejected rows: each is 1 for these files.
 */
export function outcomeCounts(result) {
  return [result.totalMatches, result.totalMismatches, result.totalBoOnly, result.totalPartnerOnly,
    result.duplicateBoKeys, result.rejectedRows];
}
