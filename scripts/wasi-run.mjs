// Cargo runner for wasm32-wasip1 test binaries: runs one under Node.js's WASI, with the host's
// file system visible at / (the tests read their samples by absolute path) and its environment.
// Usage: node --no-warnings scripts/wasi-run.mjs FILE.wasm [ARGS...] (see scripts/test-wasm.sh).
import { readFile } from 'node:fs/promises';
import { WASI } from 'node:wasi';
import process from 'node:process';

const [file, ...args] = process.argv.slice(2);
const wasi = new WASI({
  version: 'preview1',
  args: [file, ...args],
  env: process.env,
  preopens: { '/': '/' },
  returnOnExit: true,
});
const module = await WebAssembly.compile(await readFile(file));
const instance = await WebAssembly.instantiate(module, wasi.getImportObject());
process.exitCode = wasi.start(instance);
