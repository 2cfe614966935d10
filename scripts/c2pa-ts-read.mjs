// Read and validate a file's C2PA manifest with @trustnxt/c2pa-ts, a pure-TypeScript implementation that shares
// no code with c2pa-rs/c2pa-python: an independent check of our Content Credentials.
// Usage: node c2pa-ts-read.mjs FILE   (run from a folder whose node_modules holds @trustnxt/c2pa-ts)
// Prints JSON {label, valid, codes, metadata}; exit 0 when the manifest validates, 1 otherwise.
import * as fs from 'node:fs/promises';
import { JPEG, BMFF } from '@trustnxt/c2pa-ts/asset';
import { SuperBox } from '@trustnxt/c2pa-ts/jumbf';
import { ManifestStore, ValidationResult } from '@trustnxt/c2pa-ts/manifest';

const buf = new Uint8Array(await fs.readFile(process.argv[2]));
const asset = JPEG.canRead(buf) ? new JPEG(buf) : new BMFF(buf);
const jumbf = asset.getManifestJUMBF();
if (!jumbf) { console.log(JSON.stringify({ valid: false, codes: ['no manifest'] })); process.exit(1); }
const store = ManifestStore.read(SuperBox.fromBuffer(jumbf));
const manifest = store.getActiveManifest();
let result;
try { result = await store.validate(asset); } catch (e) { result = ValidationResult.fromError(e); }
const metadata = {};
for (const a of manifest.assertions.assertions) {
  for (const e of (a.entries ?? [])) if (e && e.name) metadata[e.name] = e.value;
}
console.log(JSON.stringify({ label: manifest.label, valid: result.isValid,
  codes: result.statusEntries.map((e) => e.code), metadata },
  (k, v) => (typeof v === 'bigint' ? String(v) : v)));
process.exit(result.isValid ? 0 : 1);
