// SPDX-License-Identifier: Apache-2.0
// A kafkajs consumer-group member against a running broker: joins GROUP on
// TOPIC from the earliest offset, reads COUNT messages, commits each one
// (eachMessage commits after it returns), prints every value as a JSON line,
// then disconnects (LeaveGroup). Driven by test_control_groups.py, bounded
// by a 40 s timer here and the caller's timeout.
const { Kafka, logLevel } = require('kafkajs');

async function main() {
	const [addr, group, topic, count] = [process.argv[2], process.argv[3], process.argv[4],
		Number(process.argv[5])];
	const kafka = new Kafka({
		clientId: 'slp-it-kafkajs-group', brokers: [addr], logLevel: logLevel.WARN,
		connectionTimeout: 5000, requestTimeout: 10000, retry: { retries: 8 },
	});
	const consumer = kafka.consumer({ groupId: group, sessionTimeout: 10000,
		rebalanceTimeout: 10000, heartbeatInterval: 500 });
	const timer = setTimeout(() => { console.error('timed out'); process.exit(2); }, 40000);
	let seen = 0;
	let done;
	const finished = new Promise((resolve) => { done = resolve; });
	await consumer.connect();
	await consumer.subscribe({ topic, fromBeginning: true });
	await consumer.run({
		autoCommit: true, autoCommitThreshold: 1,
		eachMessage: async ({ partition, message }) => {
			console.log(JSON.stringify({ partition, offset: message.offset,
				value: message.value.toString() }));
			if (++seen >= count)
				done();
		},
	});
	await finished;
	await consumer.commitOffsets([]).catch(() => {});
	await consumer.disconnect();
	clearTimeout(timer);
}

main().catch((e) => { console.error(e); process.exit(1); });
