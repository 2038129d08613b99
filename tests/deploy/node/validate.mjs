// Validates Kubernetes objects against the Kubernetes JSON schemas shipped by
// kubernetes-models (and @kubernetes-models/prometheus-operator for the
// ServiceMonitor). Used by tests/deploy/test_k8s.py.
//
// Input (stdin): a JSON array of {"source": "<where it came from>", "object": {...}}.
// Output (stdout): a JSON array of {"source", "kind", "name", "ok", "errors"}.
// Exit status: 0 when every object is valid, 1 when one is not, 2 on bad input
// or an apiVersion/kind this script has no model for.
import { readFileSync } from "node:fs";

// apiVersion -> module that exports one class per kind.
function modulePath(apiVersion) {
  if (apiVersion === "v1") return "kubernetes-models/v1";
  if (apiVersion.startsWith("monitoring.coreos.com/"))
    return `@kubernetes-models/prometheus-operator/${apiVersion}`;
  return `kubernetes-models/${apiVersion}`;
}

const input = JSON.parse(readFileSync(0, "utf8"));
if (!Array.isArray(input)) {
  console.error("validate.mjs: expected a JSON array on stdin");
  process.exit(2);
}

const results = [];
let invalid = false;
let unknown = false;
for (const { source, object } of input) {
  const kind = object?.kind;
  const name = object?.metadata?.name;
  const apiVersion = object?.apiVersion;
  let model;
  try {
    const mod = await import(modulePath(String(apiVersion)));
    model = mod[kind];
  } catch (e) {
    model = undefined;
  }
  if (typeof model !== "function") {
    unknown = true;
    results.push({ source, kind, name, ok: false, errors: [`no schema for ${apiVersion} ${kind}`] });
    continue;
  }
  try {
    new model(object).validate();
    results.push({ source, kind, name, ok: true, errors: [] });
  } catch (e) {
    invalid = true;
    const errors = Array.isArray(e?.errors)
      ? e.errors.map((x) => `${x.instancePath || "/"} ${x.message ?? x.keyword} ${JSON.stringify(x.params ?? {})}`)
      : [String(e?.message ?? e)];
    results.push({ source, kind, name, ok: false, errors });
  }
}
process.stdout.write(JSON.stringify(results, null, 1) + "\n");
process.exit(unknown ? 2 : invalid ? 1 : 0);
