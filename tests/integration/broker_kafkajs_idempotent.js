// SPDX-License-Identifier: Apache-2.0
// kafkajs idempotent producer (idempotent: true, which makes kafkajs send
// InitProducerId and number its batches) against a running broker: create a
// topic, send @count numbered messages twice (two sends, each acks=-1), print
// the partition, error and base offset of every acknowledged batch as JSON
// lines. Driven by test_broker_idempotent.py; bounded by kafkajs' timeouts.
const { Kafka, logLevel } = require('kafkajs');

async function main() {
	const [addr, topic, count] = [process.argv[2], process.argv[3], Number(process.argv[4])];
	const kafka = new Kafka({
		clientId: 'slp-it-kafkajs-idem', brokers: [addr], logLevel: logLevel.WARN,
		connectionTimeout: 5000, requestTimeout: 10000, retry: { retries: 3 },
	});
	const admin = kafka.admin();
	await admin.connect();
	await admin.createTopics({ topics: [{ topic, numPartitions: 2 }] });
	await admin.disconnect();
	const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1,
		allowAutoTopicCreation: false });
	await producer.connect();
	for (let round = 0; round < 2; round++) {
		const messages = [];
		for (let i = 0; i < count; i++) {
			const n = round * count + i;
			messages.push({ key: 'key-' + (n % 4), value: 'js-' + n });
		}
		const res = await producer.send({ topic, acks: -1, messages });
		for (const r of res)
			console.log(JSON.stringify({ partition: r.partition, error: r.errorCode,
				base: r.baseOffset }));
	}
	await producer.disconnect();
}

main().catch((e) => { console.error(e); process.exit(1); });
