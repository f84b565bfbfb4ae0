// Independent CID implementation for tests/fedtss/test_cid.py: npm's ipfs-unixfs-importer.
//
// Usage: node unixfs_cid.mjs [--chunk-size N] [--max-children N] FILE...
// Prints one CID per line, in argument order, computed as
// `ipfs add --cid-version 1 --raw-leaves --chunker size-N` with the balanced layout
// (N = 262144 and 174 children by default). Every option is passed explicitly so that a
// change of the library's defaults cannot silently change what the test compares against.
// Files are streamed, so a large blob does not need to fit in memory twice.
import { createReadStream } from 'node:fs'
import { importer } from 'ipfs-unixfs-importer'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { balanced } from 'ipfs-unixfs-importer/layout'

// Only the root CID is wanted: the blocks themselves are dropped.
const discardingBlockstore = { put: async (cid) => cid }

function parseArgs (argv) {
  const options = { chunkSize: 262144, maxChildrenPerNode: 174, files: [] }
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--chunk-size') options.chunkSize = Number(argv[++i])
    else if (argv[i] === '--max-children') options.maxChildrenPerNode = Number(argv[++i])
    else options.files.push(argv[i])
  }
  return options
}

async function cidOf (path, options) {
  const source = [{ content: createReadStream(path, { highWaterMark: 1 << 20 }) }]
  let root
  for await (const entry of importer(source, discardingBlockstore, {
    cidVersion: 1,
    rawLeaves: true,
    reduceSingleLeafToSelf: true,
    wrapWithDirectory: false,
    chunker: fixedSize({ chunkSize: options.chunkSize }),
    layout: balanced({ maxChildrenPerNode: options.maxChildrenPerNode })
  })) {
    root = entry.cid
  }
  return root.toString()
}

const options = parseArgs(process.argv.slice(2))
for (const path of options.files) {
  process.stdout.write(`${await cidOf(path, options)}\n`)
}
