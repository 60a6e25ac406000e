// Drives Box UI Elements in headless Chromium for tests/ui_elements.rs.
//
// It only observes: each scenario loads an element from the pinned
// box-ui-elements bundles (served by the Rust test on the page origin),
// points it at the gateway, acts as a user would, and records what the page
// shows and every request the browser made. The Rust test decides what is
// right. Input: the JSON in $SCOPEGATE_UI. Output: one JSON line on stdout.
import { chromium } from 'playwright-core';

const cfg = JSON.parse(process.env.SCOPEGATE_UI);
const WAIT = 10000;

const browser = await chromium.launch({
  executablePath: cfg.chromium,
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ],
  // The page's certificate is the test's own, self-signed.
});

// Runs one scenario in a fresh page and records what happened.
async function scenario(name, element, body) {
  const page = await browser.newPage({ viewport: { width: 1100, height: 700 }, ignoreHTTPSErrors: true });
  const out = { name, ok: true, requests: [], console: [] };
  // Fonts and the Preview SDK live on Box's CDN: offline here, refused at
  // once and recorded like every other request.
  await page.route(url => !url.href.startsWith(cfg.page) && !url.href.startsWith(cfg.gateway)
    && !url.href.startsWith(cfg.upstream), route => route.abort());
  page.on('request', r => out.requests.push({ method: r.method(), url: r.url(), status: null }));
  page.on('response', r => {
    const entry = out.requests.findLast(q => q.url === r.url() && q.status === null);
    if (entry) entry.status = r.status();
  });
  page.on('pageerror', e => out.console.push(`pageerror: ${String(e).slice(0, 300)}`));
  try {
    await page.goto(`${cfg.page}/page.html?el=${element}`);
    await body(page, out);
  } catch (e) {
    out.ok = false;
    out.error = String(e).split('\n')[0].slice(0, 400);
  }
  try {
    out.text = (await page.innerText('#root')).slice(0, 2000);
    await page.screenshot({ path: `${cfg.shots}/${name}.png` });
  } catch (e) {
    out.text = out.text ?? '';
  }
  await page.close();
  return out;
}

// Shows an element in #root with the gateway as its API and upload host.
async function show(page, cls, id, token, extra = {}) {
  await page.evaluate(([cls, id, token, gw, extra]) => {
    window.events = {};
    const el = new window.Box[cls]();
    for (const ev of ['choose', 'complete', 'error', 'download', 'select', 'navigate', 'load']) {
      el.on(ev, (...args) => { window.events[ev] = JSON.parse(JSON.stringify(args)); });
    }
    el.show(id, token, { container: '#root', apiHost: gw, uploadHost: gw, ...extra });
    window.element = el;
  }, [cls, id, token, cfg.gateway, extra]);
}

const visible = (page, text) => page.getByText(text, { exact: true }).first().waitFor({ timeout: WAIT });
// The element's own error page (its text, in the bundles' English strings).
const errorState = page => visible(page, 'A network error has occurred while trying to load.');
const events = page => page.evaluate(() => window.events);

const results = [];

// Explorer with base_explorer only: list, two levels down, search.
results.push(await scenario('explorer-browse', 'explorer', async (page, out) => {
  await show(page, 'ContentExplorer', '100', cfg.tokens.explorer);
  await visible(page, 'plan.txt');
  await visible(page, 'Reports');
  out.listed = true;
  await page.getByText('Reports', { exact: true }).first().click();
  await visible(page, 'summary.txt');
  await page.getByText('2026', { exact: true }).first().click();
  await visible(page, 'q3.pdf');
  out.two_down = true;
  await page.screenshot({ path: `${cfg.shots}/explorer-two-down.png` });
  // Back to folder 100 by its breadcrumb; the element searches the folder
  // it shows, and summary.txt lies one level below it.
  await page.getByRole('button', { name: 'Projects', exact: true }).first().click();
  await visible(page, 'plan.txt');
  const search = page.getByPlaceholder(/Search/);
  await search.fill('summary');
  await visible(page, 'summary.txt');
  out.searched = !(await page.getByText('plan.txt', { exact: true }).count());
  await page.screenshot({ path: `${cfg.shots}/explorer-search.png` });
}));

// A feature whose scope the token lacks (delete, with base_explorer only):
// the gateway's 403 is that action's failure; the listing stays.
results.push(await scenario('explorer-no-scope', 'explorer', async (page, out) => {
  await show(page, 'ContentExplorer', '100', cfg.tokens.explorer);
  await visible(page, 'plan.txt');
  const refused = page.waitForResponse(r => r.request().method() === 'DELETE', { timeout: WAIT });
  await page.getByRole('button', { name: 'More options' }).last().click();
  await page.getByRole('menuitem', { name: 'Delete' }).click();
  await page.getByRole('button', { name: 'Delete', exact: true }).last().click();
  out.delete_status = (await refused).status();
  // The element reloads the folder after a failed delete: wait for that answer.
  await page.waitForResponse(r => r.url().includes('/2.0/folders/100'), { timeout: WAIT });
  await visible(page, 'plan.txt');
  out.still_listed = true;
}));

// The sibling folder: the element's own error state, not a broken page.
results.push(await scenario('explorer-sibling', 'explorer', async (page, out) => {
  await show(page, 'ContentExplorer', '200', cfg.tokens.explorer);
  await errorState(page);
  out.error_state = true;
}));

// Explorer with preview and download: grid thumbnails, then a download.
results.push(await scenario('explorer-grid', 'explorer', async (page, out) => {
  await show(page, 'ContentExplorer', '100', cfg.tokens.explorer_full);
  await visible(page, 'plan.txt');
  await page.screenshot({ path: `${cfg.shots}/explorer-list.png` });
  // The element hands the download URL to a hidden iframe: wait for its answer.
  const download = page.waitForResponse(r => /\/files\/1001\/content/.test(r.url()), { timeout: WAIT });
  await page.getByRole('button', { name: 'More options' }).last().click();
  await page.getByRole('menuitem', { name: 'Download' }).click();
  out.download_status = (await download).status();
  await page.keyboard.press('Escape');
  await page.getByRole('button', { name: 'Switch to Grid View' }).click();
  await page.waitForFunction(() => {
    const imgs = [...document.querySelectorAll('#root img')];
    return imgs.length > 0 && imgs.every(i => i.complete);
  }, null, { timeout: WAIT });
  out.images = await page.$$eval('#root img', is => is.map(i => ({ src: i.src, width: i.naturalWidth })));
}));

// Uploader with base_upload: into the folder, then refused outside it.
results.push(await scenario('uploader-into', 'uploader', async (page, out) => {
  await show(page, 'ContentUploader', '100', cfg.tokens.upload);
  await page.setInputFiles('input[type=file] >> nth=0', cfg.upload_file);
  await page.getByRole('button', { name: 'Upload', exact: true }).click();
  await page.waitForFunction(() => window.events.complete || window.events.error, null, { timeout: WAIT });
  out.events = await events(page);
}));
results.push(await scenario('uploader-outside', 'uploader', async (page, out) => {
  await show(page, 'ContentUploader', '200', cfg.tokens.upload);
  await page.setInputFiles('input[type=file] >> nth=0', cfg.upload_file);
  await page.getByRole('button', { name: 'Upload', exact: true }).click();
  await page.waitForFunction(() => window.events.complete || window.events.error, null, { timeout: WAIT });
  out.events = await events(page);
}));

// A file over the Uploader's chunking threshold (100 MiB): a chunked upload
// session through the gateway (preflight, open, parts, commit).
results.push(await scenario('uploader-chunked', 'uploader', async (page, out) => {
  await show(page, 'ContentUploader', '100', cfg.tokens.upload);
  await page.setInputFiles('input[type=file] >> nth=0', cfg.big_file);
  await page.getByRole('button', { name: 'Upload', exact: true }).click();
  await page.waitForFunction(() => window.events.complete || window.events.error, null, { timeout: 4 * WAIT });
  out.events = await events(page);
}));

// Picker with base_picker: list the folder, choose a file.
results.push(await scenario('picker', 'picker', async (page, out) => {
  await show(page, 'ContentPicker', '100', cfg.tokens.picker, { canUpload: false, canCreateNewFolder: false, canSetShareAccess: false });
  await visible(page, 'plan.txt');
  await page.getByText('plan.txt', { exact: true }).first().click();
  await page.getByRole('button', { name: 'Choose', exact: true }).click();
  await page.waitForFunction(() => window.events.choose, null, { timeout: WAIT });
  out.events = await events(page);
}));

// Preview with base_preview: the element fetches the file's info through the
// gateway (its viewer SDK comes from Box's CDN, which is offline here); the
// page then fetches the first representation's info and content, as that
// SDK would, with the URLs the gateway answered.
results.push(await scenario('preview', 'preview', async (page, out) => {
  await show(page, 'ContentPreview', '1001', cfg.tokens.preview);
  await page.waitForFunction(gw => performance.getEntriesByType('resource')
    .some(e => e.name.startsWith(`${gw}/2.0/files/1001`)), cfg.gateway, { timeout: WAIT });
  out.fetched = await page.evaluate(async ([gw, token]) => {
    const auth = { Authorization: `Bearer ${token}` };
    // A fetch the browser refuses (CORS, network) is recorded, not thrown.
    const fetch = (url, init) => window.fetch(url, init).catch(e => ({ status: `failed: ${e}`, json: async () => ({}), arrayBuffer: async () => new ArrayBuffer(0) }));
    const info = await fetch(`${gw}/2.0/files/1001?fields=name,representations`,
      { headers: { ...auth, 'X-Rep-Hints': '[jpg?dimensions=1024x1024&paged=false,png?dimensions=1024x1024][text]' } });
    const file = await info.json();
    const rep = file.representations?.entries?.[0];
    const got = { file_status: info.status, name: file.name, rep: rep ?? null };
    if (rep) {
      const repInfo = await fetch(rep.info.url, { headers: auth });
      got.info_status = repInfo.status;
      const asset = rep.representation === 'png' ? '1.png' : '';
      const content = await fetch(`${rep.content.url_template.replace('{+asset_path}', asset)}?access_token=${token}`);
      got.content_status = content.status;
      got.content_bytes = (await content.arrayBuffer()).byteLength;
    }
    return got;
  }, [cfg.gateway, cfg.tokens.preview]);
}));

await browser.close();
console.log(JSON.stringify(results));
