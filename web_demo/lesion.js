// The pure logic of the web demo, the same contract as egeunet's Python pipeline and the Android core
// (android_demo/lesioncore): bilinear resize with OpenCV INTER_LINEAR semantics, per-image min-max
// stretch, packing into the artifact's layout/dtype, output -> mask at the photo's size -> overlay.
// Arithmetic is rounded to float32 (Math.fround) step by step, as OpenCV and PyTorch compute it, so the
// preprocessed tensor matches Python bit for bit rather than merely closely. No DOM, no onnxruntime here.

const f = Math.fround;

/** Round half to even (numpy's rint), for non-negative and negative values alike. */
export function rint(x) {
  const r = Math.round(x);
  return Math.abs(x - Math.trunc(x)) === 0.5 ? 2 * Math.round(x / 2) : r;
}

/**
 * Resize interleaved float data (height x width x channels) like cv2.resize(..., INTER_LINEAR):
 * half-pixel centres, horizontal positions outside the image take the edge pixel alone, vertical
 * source rows clamped with unchanged weights; horizontal pass first.
 */
export function resizeBilinear(src, height, width, channels, outHeight, outWidth) {
  if (height === outHeight && width === outWidth) return Float32Array.from(src);
  const x0 = new Int32Array(outWidth), x1 = new Int32Array(outWidth), ax = new Float32Array(outWidth);
  const scaleX = 1 / (outWidth / width);
  for (let dx = 0; dx < outWidth; dx++) {
    let fx = f((dx + 0.5) * scaleX - 0.5);
    let sx = Math.floor(fx);
    fx = f(fx - sx);
    if (sx < 0) { sx = 0; fx = 0; }
    if (sx >= width - 1) { sx = width - 1; fx = 0; }
    x0[dx] = sx; x1[dx] = Math.min(sx + 1, width - 1); ax[dx] = fx;
  }
  const rows = new Float32Array(height * outWidth * channels);
  for (let y = 0; y < height; y++) {
    const s = y * width * channels, d = y * outWidth * channels;
    for (let dx = 0; dx < outWidth; dx++) {
      const a1 = ax[dx], a0 = f(1 - a1);
      for (let c = 0; c < channels; c++) {
        const v0 = src[s + x0[dx] * channels + c];
        rows[d + dx * channels + c] = a1 === 0 ? v0 : f(f(v0 * a0) + f(src[s + x1[dx] * channels + c] * a1));
      }
    }
  }
  const out = new Float32Array(outHeight * outWidth * channels);
  const scaleY = 1 / (outHeight / height), rowLength = outWidth * channels;
  for (let dy = 0; dy < outHeight; dy++) {
    let fy = f((dy + 0.5) * scaleY - 0.5);
    const sy = Math.floor(fy);
    fy = f(fy - sy);
    const r0 = Math.min(Math.max(sy, 0), height - 1) * rowLength;
    const r1 = Math.min(Math.max(sy + 1, 0), height - 1) * rowLength;
    const b0 = f(1 - fy), d = dy * rowLength;
    for (let i = 0; i < rowLength; i++) out[d + i] = f(f(rows[r0 + i] * b0) + f(rows[r1 + i] * fy));
  }
  return out;
}

/** RGBA bytes (canvas ImageData.data) -> interleaved RGB floats. */
export function rgb(rgba) {
  const n = rgba.length / 4, out = new Float32Array(n * 3);
  for (let i = 0; i < n; i++) {
    out[3 * i] = rgba[4 * i]; out[3 * i + 1] = rgba[4 * i + 1]; out[3 * i + 2] = rgba[4 * i + 2];
  }
  return out;
}

/** egeunet.preprocess: resize to size x size, min-max stretch to [0, 255]; returns 3 x S x S floats (CHW). */
export function canonical(rgba, height, width, size) {
  const hwc = resizeBilinear(rgb(rgba), height, width, 3, size, size);
  let lo = Infinity, hi = -Infinity;
  for (const v of hwc) { if (v < lo) lo = v; if (v > hi) hi = v; }
  const span = f(hi - lo), plane = size * size, chw = new Float32Array(3 * plane);
  for (let i = 0; i < plane; i++) {
    for (let c = 0; c < 3; c++) chw[c * plane + i] = span > 0 ? f(f(f(hwc[3 * i + c] - lo) / span) * 255) : 0;
  }
  return chw;
}

/**
 * The artifact's I/O contract, read from its input metadata: dims [1, 3, S, S] is NCHW, [1, S, S, 3] NHWC;
 * a uint8 input means baked preprocessing (the graph stretches raw pixels itself).
 */
export function contractFromInput(dims, type) {
  const nhwc = dims[dims.length - 1] === 3 && dims[1] !== 3;
  return { size: Number(nhwc ? dims[1] : dims[2]), nhwc, baked: type === 'uint8', inputType: type };
}

/** The photo (RGBA, height x width) as the artifact's input values, in its layout and element type. */
export function packInput(rgba, height, width, contract) {
  const { size, nhwc, baked, inputType } = contract;
  let chw;
  if (baked) {
    const hwc = resizeBilinear(rgb(rgba), height, width, 3, size, size), plane = size * size;
    chw = new Float32Array(3 * plane);
    for (let i = 0; i < plane; i++) for (let c = 0; c < 3; c++) chw[c * plane + i] = Math.min(255, Math.max(0, rint(hwc[3 * i + c])));
  } else {
    chw = canonical(rgba, height, width, size);
  }
  const plane = size * size, out = inputType === 'uint8' ? new Uint8Array(3 * plane) : new Float32Array(3 * plane);
  for (let i = 0; i < 3 * plane; i++) {
    const c = nhwc ? i % 3 : Math.floor(i / plane), p = nhwc ? Math.floor(i / 3) : i % plane;
    out[i] = chw[c * plane + p];
  }
  return out;
}

/** Probabilities S x S (Float32Array) -> mask height x width, 255 where the resized value >= threshold. */
export function maskAtSize(prob, size, height, width, threshold = 0.5) {
  const full = resizeBilinear(prob, size, size, 1, height, width), mask = new Uint8Array(full.length);
  const t = f(threshold);
  for (let i = 0; i < full.length; i++) mask[i] = full[i] >= t ? 255 : 0;
  return mask;
}

/** Share of the mask's pixels that are lesion. */
export function areaFraction(mask) {
  let n = 0;
  for (const m of mask) if (m) n++;
  return mask.length ? n / mask.length : 0;
}

// egeunet predict's overlay colours: lesion tint, its opacity, outline colour.
export const TINT = [255, 40, 40], TINT_ALPHA = 0.35, CONTOUR = [255, 230, 0];

/** Outline width of egeunet predict: max(1, round(max(h, w) / 300)), half to even. */
export function contourWidth(height, width) {
  return Math.max(1, rint(Math.max(height, width) / 300));
}

/** Lesion pixels touching background or the image edge, widened by `radius` pixels (square). */
export function outline(mask, height, width, radius) {
  const edge = new Uint8Array(mask.length);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = y * width + x;
      edge[i] = mask[i] && (x === 0 || y === 0 || x === width - 1 || y === height - 1 ||
        !mask[i - 1] || !mask[i + 1] || !mask[i - width] || !mask[i + width]) ? 1 : 0;
    }
  }
  if (radius === 0) return edge;
  const wide = new Uint8Array(mask.length);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (!edge[y * width + x]) continue;
      for (let yy = Math.max(0, y - radius); yy <= Math.min(height - 1, y + radius); yy++) {
        wide.fill(1, yy * width + Math.max(0, x - radius), yy * width + Math.min(width - 1, x + radius) + 1);
      }
    }
  }
  return wide;
}

/**
 * RGBA photo with the lesion tinted (exactly egeunet predict's float32 blend, rounded half to even) and
 * outlined (boundary pixels widened to predict's line width: close to, not identical with, OpenCV's
 * drawContours). Returns a new Uint8ClampedArray usable as ImageData.
 */
export function overlay(rgba, mask, height, width) {
  const out = Uint8ClampedArray.from(rgba), keep = f(1 - TINT_ALPHA), alpha = f(TINT_ALPHA);
  for (let i = 0; i < mask.length; i++) {
    if (!mask[i]) continue;
    for (let c = 0; c < 3; c++) out[4 * i + c] = rint(f(f(keep * rgba[4 * i + c]) + f(alpha * TINT[c])));
  }
  const line = outline(mask, height, width, Math.floor(contourWidth(height, width) / 2));
  for (let i = 0; i < line.length; i++) {
    if (line[i]) { out[4 * i] = CONTOUR[0]; out[4 * i + 1] = CONTOUR[1]; out[4 * i + 2] = CONTOUR[2]; }
  }
  return out;
}
