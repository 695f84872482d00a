import { describe, expect, it } from 'vitest';

import { parseResponses, rawExchange, startServer } from './helpers';

describe('smoke', () => {
  it('answers a GET', async () => {
    const s = await startServer((req) => req.sendResponse(200, ['Content-Type', 'text/plain'], 'hi ' + req.method));
    const { data } = await rawExchange(s.port, 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    const [r] = parseResponses(data);
    expect(r.status).toBe(200);
    expect(r.body.toString()).toBe('hi GET');
    await s.close();
  });
});
