// Browser stand-in for Node's "url" module, which vtk.js's XML writer dependency
// (@oozcitak/url, via xmlbuilder2) requires when loaded; the viewer never writes XML.
export const URL = globalThis.URL;
export const URLSearchParams = globalThis.URLSearchParams;
export function domainToASCII(domain) { return domain; }
export function domainToUnicode(domain) { return domain; }
export default { URL, URLSearchParams, domainToASCII, domainToUnicode };
