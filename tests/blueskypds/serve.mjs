// The reference Bluesky network for the tests: @atproto/dev-env's TestNetwork (a PDS, a did:plc
// directory and the Bluesky AppView on PostgreSQL), every socket on 127.0.0.1.
//
// Started by tests/blueskypds/__init__.py with DB_POSTGRES_URL (an empty database) and TMPDIR (the
// PDS's data folder). It prints one JSON line once the network is up ({"pds": URL}), then reads
// commands from stdin, one a line:
//   sync  - wait until the AppView has indexed everything the PDS has written, answer "synced"
// End of stdin (the test session is over, or it died) ends it at once: its data is thrown away.
import dns from 'node:dns';
import http from 'node:http';
import { createRequire } from 'node:module';
import readline from 'node:readline';
import { pathToFileURL } from 'node:url';

// The services listen on all interfaces and call each other at http://localhost:PORT: keep both
// on 127.0.0.1, so nothing is reachable from outside and localhost never means ::1.
dns.setDefaultResultOrder('ipv4first');
const listen = http.Server.prototype.listen;
http.Server.prototype.listen = function (...args) {
  if (typeof args[0] === 'number' && typeof args[1] !== 'string') args.splice(1, 0, '127.0.0.1');
  return listen.apply(this, args);
};

// The packages live in the install folder (BLUESKY_PDS_HOME), not beside this file.
const packages = createRequire(`${process.env.BLUESKY_PDS_HOME}/`);
const { TestNetwork } = await import(pathToFileURL(packages.resolve('@atproto/dev-env')).href);
// The AppView asserts that Redis is configured but does not use it.
process.env.REDIS_HOST ??= 'unused';
const network = await TestNetwork.create({ dbPostgresUrl: process.env.DB_POSTGRES_URL, dbPostgresSchema: 'botkit' });
console.log(JSON.stringify({ pds: network.pds.url }));

for await (const line of readline.createInterface({ input: process.stdin })) {
  if (line.trim() === 'sync') {
    // Only the PDS's queue and the AppView's indexing: what posts, notifications and threads need
    // (network.processAll also drains moderation and bsync, which these tests do not use, and takes longer).
    await network.pds.processAll();
    await network.processFullSubscription(30_000);
    console.log('synced');
  }
}
process.exit(0);
