// SPDX-License-Identifier: Apache-2.0
// kafkajs against a running broker: create a topic with the admin client,
// produce keyed messages with gzip and acks=all, print the partition and
// offset of every acknowledged message as JSON lines. Driven by
// test_broker_clients.py; bounded by kafkajs' own timeouts and the caller's.
const { Kafka, CompressionTypes, logLevel } = require('kafkajs');

async function main() {
	const [addr, topic, count] = [process.argv[2], process.argv[3], Number(process.argv[4])];
	const kafka = new Kafka({
		clientId: 'slp-it-kafkajs', brokers: [addr], logLevel: logLevel.WARN,
		connectionTimeout: 5000, requestTimeout: 10000, retry: { retries: 3 },
	});
	const admin = kafka.admin();
	await admin.connect();
	const created = await admin.createTopics({ topics: [{ topic, numPartitions: 3 }] });
	const topics = await admin.listTopics();
	await admin.disconnect();
	if (!created || !topics.includes(topic))
		throw new Error('createTopics did not create ' + topic);
	const producer = kafka.producer({ allowAutoTopicCreation: false });
	await producer.connect();
	const messages = [];
	for (let i = 0; i < count; i++)
		messages.push({ key: 'key-' + (i % 5), value: 'js-' + i, headers: { n: String(i) } });
	const res = await producer.send({ topic, acks: -1, compression: CompressionTypes.GZIP, messages });
	await producer.disconnect();
	for (const r of res)
		console.log(JSON.stringify({ partition: r.partition, error: r.errorCode, base: r.baseOffset }));
}

main().catch((e) => { console.error(e); process.exit(1); });
