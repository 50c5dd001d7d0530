// The web demo's page logic: load the ONNX model with onnxruntime-web (wasm, one thread), segment a photo
// picked or taken on the phone, draw the overlay, show milliseconds and the lesion's area fraction.
// Pure pre/post-processing lives in lesion.js; ?test=golden runs golden.js instead of waiting for a photo.
/* global ort */
import * as lesion from './lesion.js';

const params = new URLSearchParams(location.search);
const $ = (id) => document.getElementById(id);

ort.env.wasm.numThreads = 1; // no SharedArrayBuffer needed, and the same kernels on every page load
ort.env.wasm.wasmPaths = new URL('vendor/', location.href).href;

/** Load an ONNX artifact; its contract (size, layout, baked preprocessing) comes from its input metadata. */
export async function loadModel(url) {
  const session = await ort.InferenceSession.create(url, { executionProviders: ['wasm'] });
  const meta = session.inputMetadata[0];
  return { session, contract: lesion.contractFromInput(meta.shape, meta.type) };
}

/** Decode an image file or blob to RGBA pixels, exactly as stored (no colour conversion, no premultiply). */
export async function decode(blob) {
  const bitmap = await createImageBitmap(blob, { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
  const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  ctx.drawImage(bitmap, 0, 0);
  const { data } = ctx.getImageData(0, 0, bitmap.width, bitmap.height);
  return { rgba: data, height: bitmap.height, width: bitmap.width };
}

/** One photo through the model: input tensor, probabilities, mask, overlay, area fraction, milliseconds. */
export async function segment(model, photo) {
  const { session, contract } = model;
  const { size, nhwc, inputType } = contract;
  const input = lesion.packInput(photo.rgba, photo.height, photo.width, contract);
  const dims = nhwc ? [1, size, size, 3] : [1, 3, size, size];
  const feeds = { [session.inputNames[0]]: new ort.Tensor(inputType, input, dims) };
  const start = performance.now();
  const outputs = await session.run(feeds);
  const ms = performance.now() - start;
  const prob = outputs[session.outputNames[0]].data; // N x 1 x S x S or N x S x S x 1: the same order
  const mask = lesion.maskAtSize(prob, size, photo.height, photo.width);
  const overlay = lesion.overlay(photo.rgba, mask, photo.height, photo.width);
  return { input, prob, mask, overlay, ms, area: lesion.areaFraction(mask) };
}

function show(photo, result) {
  const canvas = $('overlay');
  canvas.width = photo.width;
  canvas.height = photo.height;
  canvas.getContext('2d').putImageData(new ImageData(result.overlay, photo.width, photo.height), 0, 0);
  $('stats').textContent = `lesion ${(100 * result.area).toFixed(1)}% of the photo · inference ${result.ms.toFixed(1)} ms`;
  $('stats').dataset.done = '1';
}

async function main() {
  if (params.get('test') === 'golden') {
    const { runGolden } = await import('./golden.js');
    await runGolden(params.get('golden'), loadModel, decode, segment);
    return;
  }
  if ('serviceWorker' in navigator) navigator.serviceWorker.register('sw.js');
  const modelUrl = params.get('model') || 'model.onnx';
  $('status').textContent = `loading ${modelUrl} ...`;
  let model;
  try {
    model = await loadModel(modelUrl);
  } catch (err) {
    $('status').textContent = `cannot load ${modelUrl}: ${err.message}. Copy an exported .onnx here as model.onnx.`;
    return;
  }
  $('status').textContent = `model ready: ${model.contract.size}×${model.contract.size}, ${model.contract.nhwc ? 'NHWC' : 'NCHW'}`;
  $('photo').disabled = false;
  $('photo').addEventListener('change', async () => {
    const file = $('photo').files[0];
    if (!file) return;
    $('stats').textContent = 'segmenting ...';
    delete $('stats').dataset.done;
    const photo = await decode(file);
    show(photo, await segment(model, photo));
  });
}

main().catch((err) => { $('status').textContent = `error: ${err.message}`; $('status').dataset.error = '1'; });
