package org.egeunet.lesion

/**
 * egeunet's preprocessing contract (`egeunet.preprocess`) for a photo given as ARGB pixels (what
 * Android's `Bitmap.getPixels` returns): RGB as float, bilinear resize to size x size, then a min-max
 * stretch over all channels to [0, 255] (a constant image becomes 0).
 */
object Preprocess {
    /** ARGB pixels (alpha ignored) -> interleaved RGB floats, height x width x 3. */
    @JvmStatic
    fun rgb(argb: IntArray): FloatArray {
        val out = FloatArray(argb.size * 3)
        for (i in argb.indices) {
            val p = argb[i]
            out[3 * i] = ((p shr 16) and 0xff).toFloat()
            out[3 * i + 1] = ((p shr 8) and 0xff).toFloat()
            out[3 * i + 2] = (p and 0xff).toFloat()
        }
        return out
    }

    /** The photo resized to size x size, interleaved RGB floats (not yet stretched). */
    @JvmStatic
    fun resized(argb: IntArray, height: Int, width: Int, size: Int): FloatArray =
        Bilinear.resize(rgb(argb), height, width, 3, size, size)

    /** The canonical network input: float32 3 x size x size (NCHW without the batch), values in [0, 255]. */
    @JvmStatic
    fun canonical(argb: IntArray, height: Int, width: Int, size: Int): FloatArray {
        val hwc = resized(argb, height, width, size)
        var lo = Float.POSITIVE_INFINITY
        var hi = Float.NEGATIVE_INFINITY
        for (v in hwc) {
            lo = minOf(lo, v)
            hi = maxOf(hi, v)
        }
        val span = hi - lo
        val plane = size * size
        val chw = FloatArray(3 * plane)
        for (i in 0 until plane) {
            for (c in 0 until 3) chw[c * plane + i] = if (span > 0) (hwc[3 * i + c] - lo) / span * 255f else 0f
        }
        return chw
    }
}
