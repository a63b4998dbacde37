// SPDX-License-Identifier: Apache-2.0
//
// kafkajs runs driven by tests/tools/capture-golden: one short session per
// sub-command against the fake broker (capture_broker.py) so that its request
// frames are captured. kafkajs is installed from tests/integration/package.json
// (npm ci there). Producers send N records with key "key-<i>", value
// "value-<i>" and header app=slipstream-golden, like the other clients.
// kafkajs has gzip built in; snappy comes from the kafkajs-snappy codec
// (pure JavaScript snappyjs). Its lz4 and zstd codecs need native add-ons
// and are not used.
//
// usage: node golden_kafkajs.js <produce|consume|admin> <host:port> <topic>
//        [codec none|gzip|snappy] [acks -1|1|0] [n]
'use strict';

const path = require('path');
const modules = path.join(__dirname, '..', 'integration', 'node_modules');
const { Kafka, CompressionTypes, CompressionCodecs, logLevel } = require(
	path.join(modules, 'kafkajs'));
CompressionCodecs[CompressionTypes.Snappy] = require(path.join(modules, 'kafkajs-snappy'));
const CODECS = { none: CompressionTypes.None, gzip: CompressionTypes.GZIP,
	snappy: CompressionTypes.Snappy };

const [cmd, bootstrap, topic, codec = 'none', acks = '-1', nArg = '10'] =
	process.argv.slice(2);
const n = parseInt(nArg, 10);

const kafka = new Kafka({
	clientId: 'kafkajs-golden',
	brokers: [bootstrap],
	logLevel: logLevel.WARN,
	retry: { retries: 2, initialRetryTime: 100 },
	connectionTimeout: 3000,
	requestTimeout: 10000,
});

function records() {
	const out = [];
	for (let i = 0; i < n; i++)
		out.push({ key: `key-${i}`, value: `value-${i}`,
			headers: { app: 'slipstream-golden' } });
	return out;
}

async function produce() {
	if (CODECS[codec] === undefined)
		throw new Error(`codec ${codec} not available`);
	const p = kafka.producer({ allowAutoTopicCreation: true });
	await p.connect();
	await p.send({
		topic,
		acks: parseInt(acks, 10),
		compression: CODECS[codec],
		messages: records(),
	});
	await p.disconnect();
}

async function consume() {
	const c = kafka.consumer({ groupId: 'golden-kafkajs', sessionTimeout: 10000,
		heartbeatInterval: 500, maxWaitTimeInMs: 200 });
	await c.connect();
	await c.subscribe({ topics: [topic], fromBeginning: true });
	const got = [];
	await new Promise((resolve, reject) => {
		const timer = setTimeout(() => reject(new Error(`only ${got.length} records`)), 15000);
		c.run({
			autoCommit: true,
			eachMessage: async ({ message }) => {
				got.push(`${message.key}=${message.value}`);
				if (got.length >= n) {
					clearTimeout(timer);
					resolve();
				}
			},
		}).catch(reject);
	});
	await c.commitOffsets([]).catch(() => {});
	// Give one heartbeat a chance to go out before leaving the group.
	await new Promise((r) => setTimeout(r, 700));
	await c.disconnect();
	const want = records().map((r) => `${r.key}=${r.value}`);
	if (JSON.stringify(got) !== JSON.stringify(want))
		throw new Error(`consumed ${JSON.stringify(got)}`);
}

async function admin() {
	const a = kafka.admin();
	await a.connect();
	await a.createTopics({ topics: [{ topic, numPartitions: 3, replicationFactor: 1 }] });
	const names = await a.listTopics();
	const offs = await a.fetchTopicOffsets(topic);
	await a.disconnect();
	if (!names.includes(topic) || offs.length !== 3)
		throw new Error(`admin saw ${JSON.stringify(names)} ${JSON.stringify(offs)}`);
}

const cmds = { produce, consume, admin };
if (!cmds[cmd]) {
	console.error('usage: golden_kafkajs.js <produce|consume|admin> host:port topic ...');
	process.exit(2);
}
cmds[cmd]().then(() => process.exit(0), (e) => {
	console.error(`kafkajs ${cmd}: ${e.stack || e}`);
	process.exit(1);
});
