// engine.listen({ tls }) with key, cert and ca given as Buffers (not paths or PEM strings):
// HTTPS that node:https verifies against the test CA, and client certificates checked against a Buffer CA.
import fs from 'node:fs';

import { describe, expect, it } from 'vitest';

import { type Described, describeHandler, httpsRequest, startTlsServer, tlsSuite } from './tls-certs';

const suite = tlsSuite();
const buf = (file: string) => fs.readFileSync(file);

describe('TLS options as Buffers', () => {
  it('key and cert Buffers: node:https verifies the server against the test CA and gets 200', async () => {
    const { fx } = suite;
    const s = await startTlsServer(describeHandler, { key: buf(fx.server.key), cert: buf(fx.server.cert) });
    suite.servers.push(s);
    const r = await httpsRequest(s.port, { path: '/buf?x=1', ca: fx.ca.certPem, servername: 'localhost' });
    expect(r.status).toBe(200);
    const d = JSON.parse(r.body.toString()) as Described;
    expect(d.uri).toBe('/buf?x=1');
    expect(d.scheme).toBe('https');
    expect(d.tls?.clientVerify).toBe('NONE');
    // The served certificate really is the one from the Buffer: another CA does not verify it.
    await expect(httpsRequest(s.port, { ca: fx.rogueCa.certPem, servername: 'localhost' })).rejects.toMatchObject({
      code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
    });
    expect(s.errors).toEqual([]);
  });

  it('ca Buffer with requestCert: a client certificate from that CA is verified, an untrusted one refused', async () => {
    const { fx } = suite;
    const s = await startTlsServer(describeHandler, {
      key: buf(fx.server.key),
      cert: buf(fx.server.cert),
      ca: buf(fx.ca.cert),
      requestCert: true,
    });
    suite.servers.push(s);
    const common = { ca: fx.ca.certPem, servername: 'localhost' };
    const r = await httpsRequest(s.port, { ...common, cert: buf(fx.client.cert), key: buf(fx.client.key) });
    expect(r.status).toBe(200);
    const d = JSON.parse(r.body.toString()) as Described;
    expect(d.tls?.clientVerify).toBe('SUCCESS');
    expect(d.tls?.clientSubject).toBe(fx.client.subject);
    expect(d.tls?.clientSerial).toBe(fx.client.serial);
    await expect(
      httpsRequest(s.port, { ...common, cert: buf(fx.rogueClient.cert), key: buf(fx.rogueClient.key) }),
    ).rejects.toMatchObject({ code: 'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA' });
    // No certificate at all (node:https negotiates TLS 1.3: the server's alert is "certificate required").
    await expect(httpsRequest(s.port, common)).rejects.toMatchObject({ code: 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED' });
  });
});
