// Builds the browser bundles into static/dist (served by Django/WhiteNoise under /static/dist/).
//
//   npm run build          minified production build
//   npm run build -- --dev  unminified, with inline source maps
//
// Outputs:
//   static/dist/ct_viewer.js               the CT viewer (ES module, loaded with type="module")
//   static/dist/ct_viewer.css              its stylesheet
//   static/dist/decodeImageFrameWorker.js  the DICOM image loader's decode worker (ES module
//                                          worker; the loader resolves it next to ct_viewer.js
//                                          through `new URL(..., import.meta.url)`)
//   static/dist/codecs/*.wasm              WASM codecs of the decode worker (wasmBasePath)
//   static/dist/pico.min.css               the site's CSS framework (templates/base.html)
//   static/dist/plotly.min.js              Plotly for chart pages
import { build } from 'esbuild';
import { copyFile, mkdir, rm, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
const outdir = path.join(root, 'static', 'dist');
const dev = process.argv.includes('--dev');

// Package folders (npm's flat node_modules layout); several packages hide their files
// behind package "exports", so read them from disk rather than through resolution.
function packageDir(name) {
  return path.join(root, 'node_modules', ...name.split('/'));
}

// WASM decoders used by @cornerstonejs/dicom-image-loader (file names it asks for).
const WASM_CODECS = [
  ['@cornerstonejs/codec-openjpeg', 'openjpegwasm_decode.wasm'],
  ['@cornerstonejs/codec-charls', 'charlswasm_decode.wasm'],
  ['@cornerstonejs/codec-libjpeg-turbo-8bit', 'libjpegturbowasm_decode.wasm'],
  ['@cornerstonejs/codec-openjph', 'openjphjs.wasm'],
  ['@cornerstonejs/codec-libjxl', 'jpegxlwasm_decode.wasm'],
];

const common = {
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: ['es2022'],
  minify: !dev,
  sourcemap: dev ? 'inline' : false,
  legalComments: 'linked',
  logLevel: 'warning',
  // Emscripten glue code requires these only when running under Node.
  external: ['fs', 'path', 'module', 'worker_threads', 'crypto'],
  // Node's "url" is required at load time by xmlbuilder2 (through vtk.js): a small shim.
  alias: { url: path.join(here, 'src', 'shims', 'url.js') },
  define: { 'process.env.NODE_ENV': dev ? '"development"' : '"production"' },
};

async function main() {
  const started = Date.now();
  await rm(outdir, { recursive: true, force: true });
  await mkdir(path.join(outdir, 'codecs'), { recursive: true });

  await build({
    ...common,
    entryPoints: { ct_viewer: path.join(here, 'src', 'ct_viewer.js') },
    outdir,
  });
  await build({
    ...common,
    entryPoints: { ct_viewer: path.join(here, 'src', 'ct_viewer.css') },
    outdir,
  });
  await build({
    ...common,
    entryPoints: {
      decodeImageFrameWorker: path.join(
        packageDir('@cornerstonejs/dicom-image-loader'),
        'dist',
        'esm',
        'decodeImageFrameWorker.js',
      ),
    },
    outdir,
  });

  for (const [pkg, file] of WASM_CODECS) {
    await copyFile(path.join(packageDir(pkg), 'dist', file), path.join(outdir, 'codecs', file));
  }
  await copyFile(
    path.join(packageDir('@picocss/pico'), 'css', 'pico.min.css'),
    path.join(outdir, 'pico.min.css'),
  );
  await copyFile(
    path.join(packageDir('plotly.js-dist-min'), 'plotly.min.js'),
    path.join(outdir, 'plotly.min.js'),
  );

  const files = await listFiles(outdir);
  let total = 0;
  for (const file of files) total += (await stat(file)).size;
  console.log(
    `built ${files.length} files (${(total / 1048576).toFixed(1)} MiB) into ` +
      `${path.relative(root, outdir)} in ${((Date.now() - started) / 1000).toFixed(1)} s`,
  );
}

async function listFiles(dir) {
  const out = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await listFiles(full)));
    else out.push(full);
  }
  return out;
}

main().catch((error) => {
  console.error(`frontend build failed: ${error.message}`);
  process.exit(1);
});
