// Drives s3dest's admin API with Segment's official Public API client, unmodified: the only change from
// automation written for Segment is the basePath. Prints one JSON line per client method called:
//   {"step","method","status","fields":{...key fields...},"missing":[required fields absent per the SDK's types]}
// and, for a refused call, "error":{"type","message"} as the SDK hands it over (HttpError.body).
// usage: node run.js <adminUrl> <adminToken>
'use strict'
const fs = require('fs')
const path = require('path')
const PublicAPI = require('@segment/public-api-sdk-typescript')

const [adminUrl, token] = process.argv.slice(2)
const AWS_S3 = '60be92c8dabdd561bf6c9130'
const AMAZON_S3 = '54f418c3db31d978f14aa925'
const ROLE = 'arn:aws:iam::123456789012:role/segment-sdk-test'

// As for Segment, then the one change: every API at the s3dest admin URL.
const apis = PublicAPI.configureApis(token)
for (const api of Object.values(apis)) api.basePath = adminUrl

// required[Type] = {field: nullable} for the fields the SDK's model declares without `?`.
const modelDir = path.join(path.dirname(require.resolve('@segment/public-api-sdk-typescript/package.json')), 'model')
const required = {}
function requiredOf (type) {
  if (required[type]) return required[type]
  const file = path.join(modelDir, type[0].toLowerCase() + type.slice(1) + '.ts')
  const out = {}
  if (fs.existsSync(file)) {
    const src = fs.readFileSync(file, 'utf8')
    const body = src.slice(src.indexOf('export class ' + type), src.indexOf('static discriminator'))
    for (const m of body.matchAll(/^\s+'(\w+)'(\?)?: ([^;]+);$/gm)) {
      if (!m[2]) out[m[1]] = m[3].includes('null')
    }
  }
  required[type] = out
  return out
}

// missing lists every required field that is absent (or null where the type does not allow it) in a
// deserialized value of type, recursively through the model's attribute types.
function missing (value, type, where, out) {
  if (value === undefined || value === null) return out
  const arr = /^Array<(.+)>$/.exec(type)
  if (arr) {
    value.forEach((v, i) => missing(v, arr[1], `${where}[${i}]`, out))
    return out
  }
  const cls = PublicAPI[type]
  if (!cls || typeof cls.getAttributeTypeMap !== 'function') return out
  const req = requiredOf(type)
  for (const a of cls.getAttributeTypeMap()) {
    const v = value[a.name]
    const at = `${where}.${a.baseName}`
    if (a.name in req && (v === undefined || (v === null && !req[a.name]))) out.push(at)
    missing(v, a.type, at, out)
  }
  return out
}

// responseType is the type the SDK deserialized a method's answer as (its generated code names it).
const apiSource = {}
function responseType (apiName, method) {
  const cls = { sources: 'sourcesApi', destinations: 'destinationsApi', workspaces: 'workspacesApi', catalog: 'catalogApi', trackingPlans: 'trackingPlansApi', warehouses: 'warehousesApi', functions: 'functionsApi' }[apiName]
  apiSource[cls] = apiSource[cls] || fs.readFileSync(path.join(modelDir, '..', 'api', cls + '.ts'), 'utf8')
  const src = apiSource[cls]
  const start = src.indexOf(`public async ${method}(`)
  const m = /ObjectSerializer\.deserialize\(\s*body,\s*'(\w+)'/.exec(src.slice(start))
  return m && m[1]
}

let failed = false
function print (line) {
  process.stdout.write(JSON.stringify(line) + '\n')
}

// call runs apis[apiName][method](...args) and prints what it returned; pick chooses the key fields.
async function call (step, apiName, method, args, pick) {
  try {
    const { response, body } = await apis[apiName][method](...args)
    const type = responseType(apiName, method)
    const line = { step, method: `${apiName}.${method}`, status: response.statusCode, fields: pick(body.data), missing: missing(body, type, type, []) }
    if (line.missing.length) failed = true
    print(line)
    return body.data
  } catch (e) {
    if (!e || !e.statusCode) throw e
    const err = (e.body && e.body.errors && e.body.errors[0]) || {}
    print({ step, method: `${apiName}.${method}`, status: e.statusCode, error: { type: err.type, message: err.message, field: err.field }, body: typeof e.body === 'string' ? e.body.slice(0, 200) : undefined })
    return undefined
  }
}

const sourceFields = (s) => ({ id: s.id, slug: s.slug, name: s.name, enabled: s.enabled, workspaceId: s.workspaceId, metadataId: s.metadata && s.metadata.id, writeKeys: s.writeKeys.length, labels: s.labels.length })
const destFields = (d) => ({ id: d.id, name: d.name, enabled: d.enabled, sourceId: d.sourceId, metadataId: d.metadata.id, slug: d.metadata.slug, options: d.metadata.options.map((o) => o.name), settings: d.settings })
const pageFields = (p) => ({ current: p.current, next: p.next === undefined ? 'absent' : p.next, previous: p.previous === undefined ? 'absent' : p.previous, totalEntries: p.totalEntries })

// walk pages through a list method with count 1, following next until it is absent.
async function walk (step, apiName, method, key) {
  const ids = []
  let cursor
  for (let page = 1; page <= 50; page++) {
    const pagination = cursor ? { count: 1, cursor } : { count: 1 }
    const data = await call(`${step} page ${page}`, apiName, method, [pagination], (d) => ({ ids: d[key].map((x) => x.id), pagination: pageFields(d.pagination) }))
    if (!data) return ids
    ids.push(...data[key].map((x) => x.id))
    if (data.pagination.next == null) return ids
    cursor = data.pagination.next
  }
  throw new Error(`${method}: next never ended`)
}

async function main () {
  await call('workspace', 'workspaces', 'getWorkspace', [], (d) => ({ id: d.workspace.id, slug: d.workspace.slug, name: d.workspace.name }))
  const catalogFields = (d) => ({ id: d.destinationMetadata.id, slug: d.destinationMetadata.slug, name: d.destinationMetadata.name, status: d.destinationMetadata.status, options: d.destinationMetadata.options.map((o) => `${o.name}:${o.type}:${o.required}`) })
  await call('catalog AWS S3', 'catalog', 'getDestinationMetadata', [AWS_S3], catalogFields)
  await call('catalog Amazon S3', 'catalog', 'getDestinationMetadata', [AMAZON_S3], catalogFields)

  // Sources.
  const web = (await call('create source', 'sources', 'createSource', [{ slug: 'sdk-web', enabled: true, metadataId: 'IqDTy1TpoU' }], (d) => sourceFields(d.source))).source
  const app = (await call('create second source', 'sources', 'createSource', [{ slug: 'sdk-app', enabled: true, metadataId: 'IqDTy1TpoU' }], (d) => sourceFields(d.source))).source
  await call('get source', 'sources', 'getSource', [web.id], (d) => ({ ...sourceFields(d.source), trackingPlanId: d.trackingPlanId }))
  await call('update source', 'sources', 'updateSource', [web.id, { name: 'SDK Web', enabled: false }], (d) => sourceFields(d.source))
  await call('update source back', 'sources', 'updateSource', [web.id, { enabled: true }], (d) => sourceFields(d.source))
  await walk('list sources', 'sources', 'listSources', 'sources')

  // Write keys.
  const withKey = (await call('create write key', 'sources', 'createWriteKeyForSource', [web.id], (d) => sourceFields(d.source))).source
  const added = withKey.writeKeys[withKey.writeKeys.length - 1]
  await call('remove write key', 'sources', 'removeWriteKeyFromSource', [web.id, added], (d) => ({ status: d.status }))
  await call('get source after removing the key', 'sources', 'getSource', [web.id], (d) => ({ ...sourceFields(d.source), removedKeyListed: d.source.writeKeys.includes(added) }))

  // The operator's legacy Amazon S3 destination, which the migration moves away from.
  await call('create legacy destination', 'destinations', 'createDestination',
    [{ sourceId: web.id, metadataId: AMAZON_S3, name: 'Amazon S3', enabled: true, settings: { region: 'us-west-2', s3Bucket: 'sdk-bucket' } }], (d) => destFields(d.destination))

  // The reference's migration with the Public API. Step 1: find the Amazon S3 destinations.
  const all = await walk('migration step 1: list destinations', 'destinations', 'listDestinations', 'destinations')
  let legacy
  for (const id of all) {
    const d = await call('migration step 1: get destination', 'destinations', 'getDestination', [id], (d) => destFields(d.destination))
    if (d && (d.destination.metadata.id === AMAZON_S3 || d.destination.metadata.slug === 'amazon-s3') && d.destination.sourceId === web.id) legacy = d.destination
  }
  if (!legacy) throw new Error('migration step 1 found no Amazon S3 destination')
  // Step 2: create the AWS S3 destination (first into the test prefix, then the bucket itself).
  const aws = (await call('migration step 2: create AWS S3 destination', 'destinations', 'createDestination',
    [{ sourceId: legacy.sourceId, metadataId: AWS_S3, name: 'AWS S3', settings: { region: 'us-west-2', s3Bucket: 'sdk-bucket/segment-logs/test', iamRoleArn: ROLE } }], (d) => destFields(d.destination))).destination
  await call('migration step 2: point it at the bucket', 'destinations', 'updateDestination', [aws.id, { settings: { s3Bucket: 'sdk-bucket' } }], (d) => destFields(d.destination))
  // Step 3: disable the Amazon S3 destination.
  await call('migration step 3: disable the legacy destination', 'destinations', 'updateDestination', [legacy.id, { enabled: false }], (d) => destFields(d.destination))
  await call('migration: legacy destination after', 'destinations', 'getDestination', [legacy.id], (d) => destFields(d.destination))

  // Refusals.
  await call('second AWS S3 destination', 'destinations', 'createDestination',
    [{ sourceId: web.id, metadataId: AWS_S3, name: 'AWS S3 again', settings: { region: 'us-west-2', s3Bucket: 'other-bucket', iamRoleArn: ROLE } }], (d) => destFields(d.destination))
  await call('bad region', 'destinations', 'createDestination',
    [{ sourceId: app.id, metadataId: AWS_S3, settings: { region: 'us-middle-1', s3Bucket: 'sdk-bucket', iamRoleArn: ROLE } }], (d) => destFields(d.destination))
  await call('unknown source', 'sources', 'getSource', ['no-such-source'], (d) => sourceFields(d.source))
  await call('unknown destination', 'destinations', 'getDestination', ['no-such-destination'], (d) => destFields(d.destination))
  await call('not implemented', 'trackingPlans', 'listTrackingPlans', [{ count: 10 }], (d) => d)
  // The SDK's own unwrap hands over errors[0] of a refusal.
  try {
    await PublicAPI.unwrap(apis.sources.getSource('no-such-source'))
    print({ step: 'unwrap', method: 'unwrap(sources.getSource)', error: { type: 'none' } })
  } catch (e) {
    print({ step: 'unwrap', method: 'unwrap(sources.getSource)', error: { type: e.type, message: e.message } })
  }

  // Deletion.
  await call('update AWS S3 destination', 'destinations', 'updateDestination', [aws.id, { name: 'AWS S3 (migrated)', enabled: false }], (d) => destFields(d.destination))
  await call('delete legacy destination', 'destinations', 'deleteDestination', [legacy.id], (d) => ({ status: d.status }))
  await call('delete AWS S3 destination', 'destinations', 'deleteDestination', [aws.id], (d) => ({ status: d.status }))
  await call('deleted destination', 'destinations', 'getDestination', [aws.id], (d) => destFields(d.destination))
  await call('delete source', 'sources', 'deleteSource', [app.id], (d) => ({ status: d.status }))
  await call('delete source with no destinations left', 'sources', 'deleteSource', [web.id], (d) => ({ status: d.status }))
  await call('deleted source', 'sources', 'getSource', [web.id], (d) => sourceFields(d.source))
  await walk('list sources after', 'sources', 'listSources', 'sources')
  if (failed) process.exitCode = 1
}

main().catch((err) => { console.error(err && err.stack ? err.stack : err); process.exit(1) })
