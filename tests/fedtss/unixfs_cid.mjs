// Independent CID implementation for tests/fedtss/test_cid.py: npm's ipfs-unixfs-importer.
//
// Usage: node unixfs_cid.mjs [--chunk-size N] [--max-children K] FILE... [--chunk-size M FILE...]
// Prints one CID per file, in argument order, computed as
// `ipfs add --cid-version 1 --raw-leaves --chunker size-N` with the balanced layout of at most
// K links per node (N = 262144 and K = 174 unless given). An option applies to the files after
// it, so one process can serve every case of a test run. Every importer option is passed
// explicitly so that a change of the library's defaults cannot silently change what the test
// compares against. Files are streamed, so a large blob is not held in memory.
import { createReadStream } from 'node:fs'
import { importer } from 'ipfs-unixfs-importer'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { balanced } from 'ipfs-unixfs-importer/layout'

// Only the root CID is wanted: the blocks themselves are dropped.
const discardingBlockstore = { put: async (cid) => cid }

function parseArgs (argv) {
  const current = { chunkSize: 262144, maxChildrenPerNode: 174 }
  const files = []
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--chunk-size') current.chunkSize = Number(argv[++i])
    else if (argv[i] === '--max-children') current.maxChildrenPerNode = Number(argv[++i])
    else files.push({ path: argv[i], ...current })
  }
  return files
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

for (const file of parseArgs(process.argv.slice(2))) {
  process.stdout.write(`${await cidOf(file.path, file)}\n`)
}
