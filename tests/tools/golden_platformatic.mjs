// SPDX-License-Identifier: Apache-2.0
//
// @platformatic/kafka runs driven by tests/tools/capture-golden. This pure
// JavaScript client speaks the newest request versions (ApiVersions v3/v4,
// Metadata v9-v12, Produce v7-v11, Fetch v12-v17 with topic ids, the KIP-482
// flexible group APIs), so it is the source of the flexible golden frames
// that librdkafka 2.0, kafka-python 2.0 and kafkajs 2.2 never send. Installed
// from tests/integration/package.json (npm ci there); version 1.35 is the last
// that runs on Debian 12's node 20 (its zstd needs node 22's zlib, so no zstd).
//
// usage: node golden_platformatic.mjs <produce|consume|admin> host:port topic
//        [codec none|gzip|snappy|lz4] [acks -1|1|0] [n] [idempotent]
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, '..', 'integration', 'package.json'));
const kafka = await import(require.resolve('@platformatic/kafka'));
const { Producer, Consumer, Admin, stringSerializers, stringDeserializers } = kafka;

const [cmd, bootstrap, topic, codec = 'none', acks = '-1', nArg = '10', idem] =
	process.argv.slice(2);
const n = parseInt(nArg, 10);
const base = { clientId: 'platformatic-golden', bootstrapBrokers: [bootstrap],
	retries: 2, retryDelay: 100, timeout: 5000 };

function records() {
	const out = [];
	for (let i = 0; i < n; i++)
		out.push({ topic, key: `key-${i}`, value: `value-${i}`,
			headers: { app: 'slipstream-golden' }, partition: 0 });
	return out;
}

async function produce() {
	const opts = { ...base, serializers: stringSerializers, autocreateTopics: true };
	if (idem === 'idempotent')
		opts.idempotent = true;
	const p = new Producer(opts);
	await p.send({ messages: records(), acks: parseInt(acks, 10), compression: codec });
	await p.close();
}

async function consume() {
	const c = new Consumer({ ...base, groupId: 'golden-platformatic',
		deserializers: stringDeserializers, sessionTimeout: 10000,
		heartbeatInterval: 500, maxWaitTime: 200 });
	const stream = await c.consume({ topics: [topic], mode: 'earliest', autocommit: false });
	const got = [];
	const timer = setTimeout(() => stream.destroy(new Error(`only ${got.length} records`)),
		15000);
	for await (const m of stream) {
		got.push(`${m.key}=${m.value}`);
		if (got.length >= n) {
			await m.commit();
			break;
		}
	}
	clearTimeout(timer);
	await stream.close();
	await c.close();
	const want = records().map((r) => `${r.key}=${r.value}`);
	if (JSON.stringify(got) !== JSON.stringify(want))
		throw new Error(`consumed ${JSON.stringify(got)}`);
}

async function admin() {
	const a = new Admin(base);
	await a.createTopics({ topics: [topic], partitions: 3, replicas: 1 });
	const names = await a.listTopics();
	await a.close();
	if (!names.includes(topic))
		throw new Error(`admin saw ${JSON.stringify(names)}`);
}

const cmds = { produce, consume, admin };
if (!cmds[cmd]) {
	console.error('usage: golden_platformatic.mjs <produce|consume|admin> host:port topic ...');
	process.exit(2);
}
try {
	await cmds[cmd]();
	process.exit(0);
} catch (e) {
	console.error(`platformatic ${cmd}: ${e.stack || e}`);
	process.exit(1);
}
