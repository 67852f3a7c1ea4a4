/**
 * This folder's path, for finding the piscina worker script (`offload-worker.js`) beside it. A
 * CommonJS module in both builds (a `.cts` compiles to `.cjs`), because `__dirname` is the one way
 * for a file to know its own location that works in the ES module build (dist/src) and the CommonJS
 * build (dist/cjs) alike: an ES module's own URL does not exist in CommonJS, and each build must
 * start its own worker script.
 */
const moduleDir: { readonly dirname: string } = { dirname: __dirname };

export = moduleDir;
