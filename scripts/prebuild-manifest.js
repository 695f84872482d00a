#!/usr/bin/env node
// The source fingerprint behind prebuilds/MANIFEST.json: the sha256 of every
// file under native/ plus binding.gyp (sorted by path), and a combined hash.
//
//   node scripts/prebuild-manifest.js hash            prints the combined hash of the repo's sources
//   node scripts/prebuild-manifest.js write DIR ...   (used by scripts/prebuild.sh) writes DIR/prebuilds/MANIFEST.json
//
// test/prebuild-manifest.test.ts uses sourceFiles()/combinedHash() to fail
// when native/ or binding.gyp changed after the prebuilds were made.
'use strict';
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');

const REGENERATE = 'bash scripts/prebuild.sh';

function sha256(buf) {
  return crypto.createHash('sha256').update(buf).digest('hex');
}

function walk(root, rel, out) {
  for (const ent of fs.readdirSync(path.join(root, rel), { withFileTypes: true })) {
    const p = rel ? `${rel}/${ent.name}` : ent.name;
    if (ent.isDirectory()) walk(root, p, out);
    else if (ent.isFile()) out.push(p);
  }
  return out;
}

/** { 'binding.gyp': sha256, 'native/addon.cc': sha256, ... }, sorted by path. */
function sourceFiles(root) {
  const files = ['binding.gyp', ...walk(root, 'native', [])].sort();
  const result = {};
  for (const f of files) result[f] = sha256(fs.readFileSync(path.join(root, f)));
  return result;
}

/** One hash over the sorted "path  sha256" lines (the format of sha256sum). */
function combinedHash(files) {
  const lines = Object.keys(files).sort().map((f) => `${files[f]}  ${f}\n`);
  return sha256(lines.join(''));
}

module.exports = { sourceFiles, combinedHash, sha256, REGENERATE };

if (require.main === module) {
  const [cmd, dir, ...rest] = process.argv.slice(2);
  const root = path.join(__dirname, '..');
  if (cmd === 'hash') {
    console.log(combinedHash(sourceFiles(root)));
  } else if (cmd === 'write') {
    // rest: key=value pairs collected by prebuild.sh
    const info = Object.fromEntries(rest.map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
    const files = sourceFiles(dir);
    const binaries = {};
    const prebuilds = path.join(dir, 'prebuilds');
    for (const tuple of fs.readdirSync(prebuilds).sort()) {
      if (!fs.statSync(path.join(prebuilds, tuple)).isDirectory()) continue;
      for (const f of fs.readdirSync(path.join(prebuilds, tuple)).sort()) {
        const buf = fs.readFileSync(path.join(prebuilds, tuple, f));
        binaries[`${tuple}/${f}`] = {
          sha256: sha256(buf),
          bytes: buf.length,
          compiler: info[`compiler.${tuple}`],
          minGlibc: info[`glibc.${tuple}`],
          minGlibcxx: info[`glibcxx.${tuple}`] || undefined,
        };
      }
    }
    const manifest = {
      comment: `Made by \`${REGENERATE}\` from the sources hashed below; test/prebuild-manifest.test.ts fails when they change.`,
      sourceHash: combinedHash(files),
      sources: files,
      node: info.node,
      napiVersion: Number(info.napi),
      nodeAddonApi: info.nodeAddonApi,
      nodeHeaders: info.nodeHeaders,
      nodeGyp: info.nodeGyp,
      prebuildify: info.prebuildify,
      binaries,
    };
    fs.writeFileSync(path.join(prebuilds, 'MANIFEST.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  } else {
    console.error('usage: node scripts/prebuild-manifest.js hash | write DIR key=value...');
    process.exit(2);
  }
}
