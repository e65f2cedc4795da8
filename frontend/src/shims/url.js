// Browser stand-in for Node's "url" module, required (but barely used) by xmlbuilder2's
// URL parser inside vtk.js's XML readers.
export function domainToASCII(domain) {
  try {
    return new URL(`http://${domain}`).hostname;
  } catch {
    return '';
  }
}

export function domainToUnicode(domain) {
  return domain;
}

export default { domainToASCII, domainToUnicode };
