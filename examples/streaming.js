// Streaming a large response without holding it in memory: pollCb calls us
// back each time what was written so far has reached the socket, and we
// write the next part then -- so memory stays flat however slow the client.
//   node examples/streaming.js
//   curl -s 'http://127.0.0.1:8080/count?to=1000000' | tail -1
'use strict';
const { Feersum } = require('feersum-ts');

const engine = Feersum.endjinn();
engine.requestHandler((req) => {
  const to = Number(new URLSearchParams(req.query).get('to') ?? 100000);
  const w = req.startStreaming(200, ['Content-Type', 'text/plain']);
  let n = 1;
  w.pollCb((writer) => {
    // Write until past the high-water mark (write() returns false), then
    // return and wait for the next call.
    while (n <= to) {
      let chunk = '';
      for (const end = Math.min(n + 999, to); n <= end; n++) chunk += `${n}\n`;
      if (!writer.write(chunk)) return;
    }
    writer.close(); // also ends the polling
  });
  req.responseGuard(() => {
    if (n <= to) console.log(`client left at ${n - 1} of ${to}`);
  });
});
engine.listen({ host: '127.0.0.1', port: 8080 }).then(({ port }) => console.log(`http://127.0.0.1:${port}/count?to=1000`));
