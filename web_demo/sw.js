// Offline support: the page, its scripts, onnxruntime-web's wasm and the model are cached on first load
// and served from the cache afterwards (cache first, network as fallback, new same-origin files cached).
const CACHE = 'egeunet-web-demo-v1';
const CORE = ['./', 'index.html', 'app.js', 'lesion.js', 'vendor/ort.wasm.min.js',
  'vendor/ort-wasm-simd-threaded.mjs', 'vendor/ort-wasm-simd-threaded.wasm', 'model.onnx'];

self.addEventListener('install', (event) => {
  // addAll fails as a whole if one file is missing: cache what exists one by one instead.
  event.waitUntil(caches.open(CACHE).then((cache) => Promise.all(CORE.map((url) => cache.add(url).catch(() => null)))));
  self.skipWaiting();
});

self.addEventListener('activate', (event) => {
  event.waitUntil(caches.keys().then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k)))));
  self.clients.claim();
});

self.addEventListener('fetch', (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== 'GET' || url.origin !== location.origin) return;
  event.respondWith(caches.match(event.request, { ignoreSearch: true }).then((hit) => hit || fetch(event.request).then((response) => {
    if (response.ok) {
      const copy = response.clone();
      caches.open(CACHE).then((cache) => cache.put(event.request, copy));
    }
    return response;
  })));
});
