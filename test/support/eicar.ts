/**
 * The EICAR anti-virus test file (68 bytes, MD5 44d88612fea8a8f36de82e1278abb02f), put together at run time
 * from two halves so the repository holds no file a virus scanner flags. Our test clamd detects it through the
 * committed signatures in test/servers/clamav (also inside a zip).
 */
export const EICAR = Buffer.from('X5O!P%@AP[4\\PZX54(P^)7CC)7}$' + 'EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*');
