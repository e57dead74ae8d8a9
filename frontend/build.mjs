// `npm run build`: bundle the editor (CodeMirror 6) and the graph (dagre)
// from node_modules into build/static/bundle/ (git-ignored), which Django
// serves as static "bundle/..." (datadog_web/settings.py).
import { build } from "esbuild";

await build({
  entryPoints: { editor: "frontend/editor.js", dag: "frontend/dag.js" },
  outdir: "build/static/bundle",
  bundle: true,
  minify: true,
  format: "iife",
  target: ["es2020"],
  legalComments: "linked",
  logLevel: "warning",
});
