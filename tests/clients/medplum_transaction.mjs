// MedplumClient (@medplum/core) posting a transaction with two conditional
// creates of the same Patient, as a GP system built on Medplum would.
// Usage: node medplum_transaction.mjs BASE_URL TOKEN  (prints the response Bundle)
import { MedplumClient } from '@medplum/core';

const [base, token] = process.argv.slice(2);
const medplum = new MedplumClient({ baseUrl: `${base}/`, fhirUrlPath: 'fhir', fetch });
medplum.setAccessToken(token);

const nhs = 'https://fhir.nhs.uk/Id/nhs-number|9434765919';
const patient = {
  resourceType: 'Patient', gender: 'male', birthDate: '1961-04-02',
  identifier: [{ system: 'https://fhir.nhs.uk/Id/nhs-number', value: '9434765919' }],
};
const entry = (fullUrl, resource, ifNoneExist) => ({
  fullUrl, resource,
  request: { method: 'POST', url: resource.resourceType, ...(ifNoneExist && { ifNoneExist }) },
});
const bundle = {
  resourceType: 'Bundle', type: 'transaction',
  entry: [
    entry('urn:uuid:0a0a0a0a-0000-4000-8000-000000000001', patient, `identifier=${nhs}`),
    entry('urn:uuid:0a0a0a0a-0000-4000-8000-000000000002', patient, `identifier=${nhs}`),
    entry('urn:uuid:0a0a0a0a-0000-4000-8000-000000000003', {
      resourceType: 'Condition', code: { coding: [{ system: 'http://snomed.info/sct', code: '194828000' }] },
      subject: { reference: 'urn:uuid:0a0a0a0a-0000-4000-8000-000000000001' },
    }),
    entry('urn:uuid:0a0a0a0a-0000-4000-8000-000000000004', {
      resourceType: 'ServiceRequest', status: 'active', intent: 'order',
      category: [{ coding: [{ system: 'http://snomed.info/sct', code: '363679005' }] }],
      code: { coding: [{ system: 'http://snomed.info/sct', code: '363679005' }] },
      subject: { reference: 'urn:uuid:0a0a0a0a-0000-4000-8000-000000000002' },
      reasonCode: [{ coding: [{ system: 'http://snomed.info/sct', code: '194828000' }] }],
    }),
  ],
};
const result = await medplum.executeBatch(bundle);
process.stdout.write(JSON.stringify(result));
