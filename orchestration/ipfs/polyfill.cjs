// Loaded with `node --require` before js-ipfs (npm `ipfs` 0.66.1) starts.
//
// js-ipfs is archived; some of its newer transitive dependencies call
// `Promise.withResolvers` (ES2024), which Node 20 does not have (Node 22 does).
// This adds exactly that function, per the TC39 spec, and turns Nagle's algorithm off on
// every TCP socket (below); nothing else.
'use strict'

if (typeof Promise.withResolvers !== 'function') {
  Object.defineProperty(Promise, 'withResolvers', {
    configurable: true,
    writable: true,
    value: function withResolvers () {
      let resolve
      let reject
      const promise = new this((res, rej) => {
        resolve = res
        reject = rej
      })
      return { promise, resolve, reject }
    }
  })
}

// libp2p's TCP sockets (the swarm's, dialled or accepted) without Nagle's algorithm.
// @libp2p/tcp 6 sets noDelay on no socket; each bitswap exchange negotiates a new stream with
// a few small writes, and Nagle's delay against the peer's delayed ACK cost ~265 ms per fetch
// from another node (measured on loopback), whatever the blob's size: 30-40 ms without it
// (`python -m benchmarks.ipfs_fetch`). The RPC API's HTTP sockets are left as they are: adds
// through it measured 10-23 ms per blob either way.
const net = require('node:net')
const http = require('node:http')
const connect = net.Socket.prototype.connect
net.Socket.prototype.connect = function connectWithoutDelay (...args) {
  this.setNoDelay(true)
  return connect.apply(this, args)
}
const emit = net.Server.prototype.emit
net.Server.prototype.emit = function emitWithoutDelay (event, socket, ...rest) {
  if (event === 'connection' && socket instanceof net.Socket && !(this instanceof http.Server)) {
    socket.setNoDelay(true)
  }
  return emit.call(this, event, socket, ...rest)
}
