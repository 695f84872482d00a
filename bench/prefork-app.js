// The hello-world PSGI app the pre-fork benchmark runs under the feersum-ts
// runner (the same response as bench/servers.js psgi).
'use strict';
const headers = ['Content-Type', 'text/plain'];
const body = ['Hello, World!\n'];
module.exports = () => [200, headers, body];
