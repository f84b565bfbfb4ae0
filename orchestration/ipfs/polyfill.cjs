// Loaded with `node --require` before js-ipfs (npm `ipfs` 0.66.1) starts.
//
// js-ipfs is archived; some of its newer transitive dependencies call
// `Promise.withResolvers` (ES2024), which Node 20 does not have (Node 22 does).
// This adds exactly that function, per the TC39 spec, and nothing else.
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
