// Validate one GLB file with the Khronos glTF-Validator (npm "gltf-validator").
//
// Usage: node gltf_validate.mjs FILE.glb
// Prints the validator's report summary as one JSON line:
//   {"errors": n, "warnings": n, "messages": [{"severity", "code", "message", "pointer"}]}
// and exits 0; it exits 2 when the package is not installed.
import { readFileSync } from 'node:fs';

let validator;
try {
  validator = await import('gltf-validator');
} catch {
  console.error('gltf-validator is not installed');
  process.exit(2);
}
const report = await validator.validateBytes(new Uint8Array(readFileSync(process.argv[2])));
const messages = report.issues.messages.map(({ severity, code, message, pointer }) =>
  ({ severity, code, message, pointer }));
console.log(JSON.stringify({
  errors: report.issues.numErrors, warnings: report.issues.numWarnings, messages,
}));
