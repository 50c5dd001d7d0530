// Test mode (?test=golden&golden=DIR/): run every ONNX artifact listed in DIR/index.json (written by
// egeunet.golden) on every golden photo, through the same decode and segment functions as a real photo,
// and publish the results as window.goldenResults (base64 little-endian arrays) for the Python test.

function base64(typed) {
  const bytes = new Uint8Array(typed.buffer, typed.byteOffset, typed.byteLength);
  let text = '';
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(text);
}

export async function runGolden(dir, loadModel, decode, segment) {
  const status = document.getElementById('status');
  const base = new URL(dir, location.href);
  const index = await (await fetch(new URL('index.json', base))).json();
  const results = [];
  for (const artifact of index.artifacts.filter((a) => a.file.endsWith('.onnx'))) {
    status.textContent = `golden: ${artifact.file}`;
    const model = await loadModel(new URL(`../${artifact.file}`, base).href);
    for (const image of index.images) {
      const photo = await decode(await (await fetch(new URL(image.image, base))).blob());
      const r = await segment(model, photo);
      results.push({
        artifact: artifact.file, image: image.name, height: photo.height, width: photo.width,
        input: base64(r.input), prob: base64(r.prob), mask: base64(r.mask), ms: r.ms, area: r.area,
      });
    }
  }
  window.goldenResults = results;
  status.textContent = `golden: ${results.length} runs done`;
  status.dataset.done = '1';
}
