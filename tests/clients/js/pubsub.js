// Publishes and consumes messages with the real, unmodified nsqjs client, for
// tests/real_clients.rs.
//
// Usage: node pubsub.js --nsqd HOST:PORT --topic T --channel C --messages FILE
//          [--tls] [--ca FILE] [--cert FILE --key FILE] [--snappy] [--deflate]
//          [--deflate-level N] [--auth-secret S]
//
// FILE holds a JSON array of hex message bodies. The first half is published one PUB each,
// the rest as one MPUB. A Reader on T/C finishes each message it gets.
//
// Output (stdout), one JSON object a line:
//   {"event":"holding","received":[hex...]}  every body arrived; both connections stay open
//                                                until a line arrives on stdin (so the test can
//                                                read the server's /stats meanwhile)
//   {"event":"done"}                             both connections closed; exit status 0
//   {"event":"error","message":"..."}            anything failed; exit status 1

'use strict'

const fs = require('fs')
const readline = require('readline')
const nsq = require('nsqjs')

function fail(message) {
  process.stdout.write(JSON.stringify({event: 'error', message: String(message)}) + '\n')
  process.exit(1)
}

function parseArgs(argv) {
  const args = {tls: false, snappy: false, deflate: false}
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]
    const value = () => {
      if (i + 1 >= argv.length) fail(`${flag} needs a value`)
      return argv[++i]
    }
    switch (flag) {
      case '--nsqd': args.nsqd = value(); break
      case '--topic': args.topic = value(); break
      case '--channel': args.channel = value(); break
      case '--messages': args.messages = value(); break
      case '--tls': args.tls = true; break
      case '--ca': args.ca = value(); break
      case '--cert': args.cert = value(); break
      case '--key': args.key = value(); break
      case '--snappy': args.snappy = true; break
      case '--deflate': args.deflate = true; break
      case '--deflate-level': args.deflateLevel = Number(value()); break
      case '--auth-secret': args.authSecret = value(); break
      default: fail(`unknown argument ${flag}`)
    }
  }
  for (const required of ['nsqd', 'topic', 'channel', 'messages']) {
    if (!args[required]) fail(`--${required} is required`)
  }
  return args
}

// The connection options nsqjs' Reader and Writer share.
function connectionOptions(args) {
  const options = {tls: args.tls, snappy: args.snappy, deflate: args.deflate}
  if (args.tls) {
    // Verify the server against the given CA (nsqjs verifies by default; without a CA file the
    // system roots would be used, which cannot know a test CA).
    options.tlsVerification = true
    if (args.ca) options.ca = fs.readFileSync(args.ca)
    if (args.cert) options.cert = fs.readFileSync(args.cert)
    if (args.key) options.key = fs.readFileSync(args.key)
  }
  if (args.deflateLevel !== undefined) options.deflateLevel = args.deflateLevel
  if (args.authSecret !== undefined) options.authSecret = args.authSecret
  return options
}

function main() {
  const args = parseArgs(process.argv.slice(2))
  const bodies = JSON.parse(fs.readFileSync(args.messages, 'utf8')).map((b) => Buffer.from(b, 'hex'))
  const [host, port] = [args.nsqd.slice(0, args.nsqd.lastIndexOf(':')), Number(args.nsqd.slice(args.nsqd.lastIndexOf(':') + 1))]
  const options = connectionOptions(args)

  const received = []
  let holding = false
  const reader = new nsq.Reader(args.topic, args.channel, Object.assign({
    nsqdTCPAddresses: [args.nsqd],
    maxInFlight: Math.max(1, bodies.length),
    // A failed connection must fail the test, not be retried quietly.
    maxAttempts: 1,
  }, options))
  const writer = new nsq.Writer(host, port, options)

  reader.on('error', (err) => fail(`reader: ${err && err.stack || err}`))
  reader.on('nsqd_closed', () => { if (!holding) fail('reader: nsqd closed the connection') })
  reader.on('message', (msg) => {
    received.push(msg.body.toString('hex'))
    msg.finish()
    if (received.length === bodies.length) hold()
  })
  writer.on('error', (err) => fail(`writer: ${err && err.stack || err}`))
  writer.on('closed', () => { if (!holding) fail('writer: nsqd closed the connection') })

  function hold() {
    holding = true
    process.stdout.write(JSON.stringify({event: 'holding', received}) + '\n')
    const input = readline.createInterface({input: process.stdin})
    input.once('line', () => {
      input.close()
      reader.close()
      writer.close()
      process.stdout.write(JSON.stringify({event: 'done'}) + '\n')
      process.exit(0)
    })
  }

  function publish() {
    const half = Math.floor(bodies.length / 2)
    const one = (i) => {
      if (i === half) {
        if (half === bodies.length) return
        writer.publish(args.topic, bodies.slice(half), (err) => { if (err) fail(`MPUB: ${err}`) })
        return
      }
      writer.publish(args.topic, bodies[i], (err) => {
        if (err) fail(`PUB: ${err}`)
        one(i + 1)
      })
    }
    one(0)
  }

  reader.on('nsqd_connected', () => {
    writer.on('ready', publish)
    writer.connect()
  })
  reader.connect()
}

main()
