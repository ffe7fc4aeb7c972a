// An `extract` job's result on its page: the fields each profile found, as nested rows, beside
// the document's page text; choosing a field marks the text it was read from. Any value shaped
// `{value, confidence, source: {page, start, end}}` is a field, whatever profile it comes from,
// so a new profile shows up here without code of its own.

/** A value the extractor found, with the span of page text it was read from. */
export function isFound(node) {
  return (
    node !== null &&
    typeof node === 'object' &&
    !Array.isArray(node) &&
    'value' in node &&
    node.source !== null &&
    typeof node.source === 'object' &&
    Number.isInteger(node.source.page)
  );
}

/** Keys of an extract result that are about the document, not a profile's findings. */
const DOCUMENT_KEYS = new Set(['warnings', 'format', 'pageCount', 'pages', 'files']);

const PROFILE_TITLES = { dce: 'Tender file (dce)', receipt: 'Receipt', requirements: 'Requirements' };

/**
 * The order fields are shown in: as the profiles document them (the result's keys come
 * sorted by name). A key not listed follows the listed ones, in the result's order.
 */
const KEY_ORDER = [
  // dce
  'buyer', 'object', 'reference', 'procedure', 'offersDeadline', 'duration', 'initial', 'renewals', 'count', 'period',
  'total', 'lots', 'number', 'title', 'estimatedAmount', 'awardCriteria', 'name', 'weight', 'subCriteria', 'cpv',
  'siteVisit', 'variants', 'guarantees', 'type', 'label', 'rate',
  // receipt
  'merchant', 'date', 'time', 'currency', 'vat', 'base', 'amount', 'otherTaxes', 'items', 'quantity', 'unit',
  'unitPrice', 'paymentMethod', 'change',
  // requirements
  'id', 'text', 'category', 'section', 'occurrences',
];

function ordered(object) {
  const rank = key => {
    const at = KEY_ORDER.indexOf(key);
    return at < 0 ? KEY_ORDER.length : at;
  };
  return Object.entries(object).sort(([a], [b]) => rank(a) - rank(b));
}

/** `offersDeadline` → "offers deadline", `siteVisit` → "site visit". */
function words(key) {
  return String(key)
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .replace(/_/g, ' ')
    .toLowerCase();
}

/** A found value as a person reads it: dates and times together, amounts with their unit. */
export function formatValue(value) {
  if (value === null || value === undefined) return '—';
  if (typeof value === 'boolean') return value ? 'yes' : 'no';
  if (typeof value !== 'object') return String(value);
  if (Array.isArray(value)) return value.map(formatValue).join(', ');
  if (isFound(value)) return formatValue(value.value);
  if ('label' in value && 'type' in value) return `${formatValue(value.label)} (${formatValue(value.type)})`;
  if ('date' in value) return [value.date, value.time].filter(v => v !== null && v !== undefined).join(' ');
  if ('value' in value && ('unit' in value || 'currency' in value)) {
    // An amount or a period: "48000 EUR, tax excluded", "12 months".
    const tax = value.tax ? `, tax ${value.tax}` : '';
    const unit = value.unit ?? value.currency;
    return `${formatValue(value.value)}${unit ? ` ${unit}` : ''}${tax}`;
  }
  if ('count' in value && 'period' in value) return `${formatValue(value.count)}${value.period ? ` × ${formatValue(value.period)}` : ''}`;
  return ordered(value)
    .filter(([, v]) => v !== null && v !== undefined)
    .map(([k, v]) => (typeof v === 'object' || k === 'value' || k === 'unit' || k === 'currency' ? formatValue(v) : `${words(k)} ${formatValue(v)}`))
    .join(' ');
}

/** A short name for a list's entry: "lot 2" by its number or id, else its name or label. */
function entryName(list, item, index) {
  const one = list.endsWith('s') ? list.slice(0, -1) : list;
  for (const key of ['number', 'id', 'code', 'name', 'label']) {
    const v = item?.[key];
    const shown = isFound(v) ? v.value : v;
    if (shown === null || shown === undefined || typeof shown === 'object') continue;
    return ['name', 'label'].includes(key) ? String(shown) : `${one} ${shown}`;
  }
  return `${one} ${index + 1}`;
}

/**
 * Renders `result` (an extract job's) into a new element. Fields are rows of a table; a row
 * whose value has a source has a button that shows its page and marks the span.
 */
export function renderExtraction(result) {
  const root = document.createElement('div');
  root.className = 'extraction';
  const pages = Array.isArray(result.pages) ? result.pages : [];

  const fields = document.createElement('div');
  fields.className = 'fields';
  const doc = document.createElement('div');
  doc.className = 'doc';
  root.append(fields, doc);

  // --- The document: one page at a time, with buttons to turn pages. ---
  const docTitle = document.createElement('h3');
  docTitle.id = 'extract-doc-title';
  docTitle.textContent = `Document: ${result.format ?? 'unknown format'}, ${result.pageCount ?? pages.length} page${(result.pageCount ?? pages.length) === 1 ? '' : 's'}`;
  const pager = document.createElement('div');
  pager.className = 'pager';
  pager.setAttribute('role', 'group');
  pager.setAttribute('aria-label', 'pages');
  const caption = document.createElement('p');
  caption.className = 'page-caption';
  caption.setAttribute('aria-live', 'polite');
  const text = document.createElement('pre');
  text.className = 'page-text extract-text';
  text.id = 'extract-text';
  text.tabIndex = 0;
  text.setAttribute('aria-labelledby', 'extract-doc-title');
  doc.append(docTitle, pager, caption, text);

  /** Shows page `number` (the first when it has none), `span` of its text marked; returns the mark. */
  function showPage(number, span = null) {
    const page = pages.find(p => p.page === number) ?? pages[0];
    if (!page) {
      text.textContent = 'The result holds no page text.';
      return null;
    }
    for (const button of pager.querySelectorAll('button')) {
      button.setAttribute('aria-pressed', String(Number(button.dataset.page) === page.page));
    }
    const how = { text: 'text', textLayer: 'text layer', ocr: 'recognised', docx: 'DOCX', odt: 'ODT' }[page.source] ?? page.source;
    caption.textContent = `Page ${page.page}: ${how ?? 'text'}${page.confidence !== undefined && page.confidence !== null ? `, OCR confidence ${page.confidence}` : ''}`;
    const chars = Array.from(page.text ?? '');
    if (!span) {
      text.textContent = chars.join('');
      return null;
    }
    const start = Math.max(0, Math.min(span.start, chars.length));
    const end = Math.max(start, Math.min(span.end, chars.length));
    const mark = document.createElement('mark');
    mark.textContent = chars.slice(start, end).join('');
    text.replaceChildren(chars.slice(0, start).join(''), mark, chars.slice(end).join(''));
    return mark;
  }
  for (const page of pages) {
    const button = document.createElement('button');
    button.type = 'button';
    button.dataset.page = String(page.page);
    button.textContent = String(page.page);
    button.setAttribute('aria-label', `page ${page.page}`);
    button.addEventListener('click', () => {
      select(null);
      showPage(page.page);
    });
    pager.append(button);
  }
  pager.hidden = pages.length < 2;

  // --- The fields: per profile, a table of nested rows. ---
  let selected = null;
  function select(button, found) {
    if (selected) selected.setAttribute('aria-pressed', 'false');
    selected = button;
    if (!button) return;
    button.setAttribute('aria-pressed', 'true');
    const mark = showPage(found.source.page, found.source);
    if (mark) {
      // Within the text's own scroll box first, then the window on a phone (the text below).
      text.scrollTop = Math.max(0, mark.offsetTop - text.offsetTop - text.clientHeight / 3);
      const box = mark.getBoundingClientRect();
      if (box.top < 0 || box.bottom > window.innerHeight) mark.scrollIntoView({ block: 'center', inline: 'nearest' });
    }
  }

  const warnings = Array.isArray(result.warnings) ? result.warnings : [];
  if (warnings.length) {
    const box = document.createElement('div');
    box.className = 'warnings';
    box.setAttribute('role', 'note');
    const title = document.createElement('h3');
    title.textContent = 'Warnings';
    const list = document.createElement('ul');
    for (const warning of warnings) {
      const item = document.createElement('li');
      item.textContent = typeof warning === 'string' ? warning : JSON.stringify(warning);
      list.append(item);
    }
    box.append(title, list);
    fields.append(box);
  }

  const profiles = Object.keys(result).filter(key => !DOCUMENT_KEYS.has(key));
  for (const profile of profiles) {
    const title = document.createElement('h3');
    title.id = `extract-${profile}-title`;
    title.textContent = PROFILE_TITLES[profile] ?? words(profile);
    const wrap = document.createElement('div');
    wrap.className = 'table';
    const table = document.createElement('table');
    table.className = 'found';
    table.dataset.profile = profile;
    table.setAttribute('aria-labelledby', title.id);
    table.innerHTML =
      '<thead><tr><th scope="col">Field</th><th scope="col">Value</th>' +
      '<th scope="col"><span class="long">Confidence</span><abbr class="short" title="confidence">%</abbr></th>' +
      '<th scope="col"><span class="long">Page</span><abbr class="short" title="page">p.</abbr></th></tr></thead>';
    const body = document.createElement('tbody');
    rows(result[profile], null, 0, body);
    if (!body.children.length) body.append(row('nothing found', null, 0));
    table.append(body);
    wrap.append(table);
    fields.append(title, wrap);
  }
  if (!profiles.length) {
    const none = document.createElement('p');
    none.textContent = 'No profile in this result.';
    fields.append(none);
  }

  /** One row: a field's name (a button when it has a source), value, confidence and page. */
  function row(label, found, depth, plain) {
    const tr = document.createElement('tr');
    tr.dataset.depth = String(depth);
    const name = document.createElement('th');
    name.scope = 'row';
    name.style.setProperty('--depth', String(depth));
    const value = document.createElement('td');
    value.className = 'value';
    const confidence = document.createElement('td');
    confidence.className = 'confidence';
    const page = document.createElement('td');
    page.className = 'page';
    if (found) {
      tr.dataset.field = label;
      const button = document.createElement('button');
      button.type = 'button';
      button.className = 'field';
      button.textContent = label;
      button.setAttribute('aria-pressed', 'false');
      button.setAttribute('aria-controls', 'extract-text');
      button.title = `show where ${label} was read`;
      button.addEventListener('click', () => select(button, found));
      name.append(button);
      value.textContent = formatValue(found);
      const percent = Math.round((Number(found.confidence) || 0) * 100);
      confidence.innerHTML = '<span class="bar small" aria-hidden="true"><span></span></span> <span class="percent"></span>';
      confidence.querySelector('.bar span').style.width = `${percent}%`;
      confidence.querySelector('.percent').textContent = `${percent}%`;
      page.textContent = String(found.source.page);
    } else {
      name.textContent = label;
      value.textContent = plain ?? '';
      if (plain === undefined) tr.className = 'group';
    }
    tr.append(name, value, confidence, page);
    return tr;
  }

  /** The rows of one node: a found value, a list (one group per entry), or an object. */
  function rows(node, label, depth, body) {
    if (isFound(node)) {
      body.append(row(label ?? 'value', node, depth));
      return;
    }
    if (Array.isArray(node)) {
      const at = depth;
      if (label !== null) body.append(row(`${label}`, null, depth, node.length ? `${node.length}` : 'none'));
      node.forEach((item, i) => {
        const name = entryName(label ?? 'items', item, i);
        if (item && typeof item === 'object' && !isFound(item) && !Array.isArray(item)) {
          body.append(row(name, null, at + 1));
          for (const [key, child] of ordered(item)) rows(child, words(key), at + 2, body);
        } else {
          rows(item, name, at + 1, body);
        }
      });
      return;
    }
    if (node && typeof node === 'object') {
      const next = label === null ? depth : depth + 1;
      if (label !== null) body.append(row(label, null, depth));
      for (const [key, child] of ordered(node)) rows(child, words(key), next, body);
      return;
    }
    body.append(row(label ?? 'value', null, depth, formatValue(node)));
  }

  showPage(pages[0]?.page);
  return root;
}

/**
 * The child jobs an `extract` job waits for (its OCR): one line each with a progress bar,
 * filled from the events of the children that arrive on the parent's topic.
 */
export class ChildJobs {
  constructor(box) {
    this.box = box;
    this.children = new Map(); // id -> {type, status, percent, row}
  }

  clear() {
    this.children.clear();
    this.box.replaceChildren();
    this.box.hidden = true;
  }

  /** A child named by its parent's JOB_WAITING (or read from the API), at its known state. */
  add(id, type, job = null) {
    let child = this.children.get(id);
    if (!child) {
      const row = document.createElement('p');
      row.className = 'child';
      row.dataset.jobId = id;
      row.innerHTML =
        '<a></a> <span class="child-status"></span> <span class="bar" role="progressbar" aria-valuemin="0" aria-valuemax="100"><span></span></span> <small class="child-step"></small>';
      row.querySelector('a').href = `#/jobs/${id}`;
      row.querySelector('a').textContent = `${type === 'ocr' ? 'Reading the scanned pages (OCR)' : type}, job ${id.slice(-8)}`;
      child = { type, status: 'pending', percent: 0, seq: 0, step: '', row };
      this.children.set(id, child);
      if (!this.box.querySelector('h3')) {
        const title = document.createElement('h3');
        title.textContent = 'Child jobs';
        this.box.append(title);
      }
      this.box.append(row);
      this.box.hidden = false;
    }
    if (job && (job.seq ?? 0) > child.seq) {
      child.seq = job.seq ?? 0;
      child.status = job.status;
      const p = job.progress ?? {};
      child.percent = job.status === 'completed' ? 100 : Math.round(p.percentage ?? 0);
      child.step = p.step ?? '';
    }
    this.draw(id);
  }

  /** One of a child's events, as the parent's topic carries it. */
  event(ev) {
    const child = this.children.get(ev.jobId);
    if (!child) this.add(ev.jobId, ev.jobType);
    const known = this.children.get(ev.jobId);
    if (ev.seq <= known.seq) return;
    known.seq = ev.seq;
    known.status = ev.status ?? known.status;
    if (ev.event === 'PROGRESS_UPDATE') {
      known.percent = Math.round(ev.percentage ?? known.percent);
      known.step = ev.step ?? known.step;
    }
    if (ev.event === 'JOB_COMPLETED') known.percent = 100;
    this.draw(ev.jobId);
  }

  draw(id) {
    const child = this.children.get(id);
    const { row } = child;
    const words = { pending: 'queued', processing: 'running' };
    row.querySelector('.child-status').textContent = words[child.status] ?? child.status;
    const bar = row.querySelector('[role=progressbar]');
    bar.setAttribute('aria-valuenow', String(child.percent));
    bar.setAttribute('aria-label', `child job ${id.slice(-8)} ${child.percent}%`);
    bar.querySelector('span').style.width = `${child.percent}%`;
    row.querySelector('.child-step').textContent = child.step ? String(child.step) : `${child.percent}%`;
  }
}
