// Sends N track events with Segment's official Node.js client to an s3dest Tracking API.
// usage: node send.js <trackingUrl> <writeKey> <count>
const { Analytics } = require('@segment/analytics-node')

async function main () {
  const [host, writeKey, count] = process.argv.slice(2)
  const analytics = new Analytics({ writeKey, host, flushAt: 100, flushInterval: 200, maxRetries: 10 })
  let failed = 0
  analytics.on('error', (err) => { failed++; console.error('error', err && err.code, err && err.reason) })
  for (let i = 0; i < Number(count); i++) {
    analytics.track({ userId: 'node-user', event: 'Node Event', messageId: `node-${i}`, properties: { seq: i } })
  }
  await analytics.closeAndFlush({ timeout: 60000 })
  if (failed > 0) {
    console.error(`${failed} deliveries failed`)
    process.exit(1)
  }
}

main().catch((err) => { console.error(err); process.exit(1) })
