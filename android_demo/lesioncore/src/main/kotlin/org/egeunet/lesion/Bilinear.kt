package org.egeunet.lesion

/**
 * Bilinear resize with OpenCV's `cv2.resize(..., INTER_LINEAR)` semantics on float32 data, the resize of
 * egeunet's preprocessing contract and of its output post-processing.
 *
 * Half-pixel centres: source x = (dx + 0.5) * in/out - 0.5, computed as OpenCV does (scale in double,
 * position rounded to float). Horizontally a position left of the first or right of the last pixel takes
 * that pixel alone; vertically the two source rows are clamped into the image with unchanged weights.
 * Each output is `s0 * w0 + s1 * w1` in float, horizontally first, as OpenCV computes it.
 */
object Bilinear {
    /** Resize [src] (height x width x channels, interleaved) to outHeight x outWidth. */
    @JvmStatic
    fun resize(src: FloatArray, height: Int, width: Int, channels: Int, outHeight: Int, outWidth: Int): FloatArray {
        require(src.size == height * width * channels) { "expected ${height * width * channels} values, got ${src.size}" }
        if (height == outHeight && width == outWidth) return src.copyOf()
        val x0 = IntArray(outWidth)
        val x1 = IntArray(outWidth)
        val ax = FloatArray(outWidth)
        val scaleX = 1.0 / (outWidth.toDouble() / width)
        for (dx in 0 until outWidth) {
            var fx = ((dx + 0.5) * scaleX - 0.5).toFloat()
            var sx = Math.floor(fx.toDouble()).toInt()
            fx -= sx
            if (sx < 0) {
                sx = 0
                fx = 0f
            }
            if (sx >= width - 1) {
                sx = width - 1
                fx = 0f
            }
            x0[dx] = sx
            x1[dx] = minOf(sx + 1, width - 1)
            ax[dx] = fx
        }
        // Horizontal pass over every source row.
        val rows = FloatArray(height * outWidth * channels)
        for (y in 0 until height) {
            val srcRow = y * width * channels
            val dstRow = y * outWidth * channels
            for (dx in 0 until outWidth) {
                val a1 = ax[dx]
                val a0 = 1f - a1
                for (c in 0 until channels) {
                    val s0 = src[srcRow + x0[dx] * channels + c]
                    rows[dstRow + dx * channels + c] =
                        if (a1 == 0f) s0 else s0 * a0 + src[srcRow + x1[dx] * channels + c] * a1
                }
            }
        }
        // Vertical pass.
        val out = FloatArray(outHeight * outWidth * channels)
        val scaleY = 1.0 / (outHeight.toDouble() / height)
        val rowLength = outWidth * channels
        for (dy in 0 until outHeight) {
            var fy = ((dy + 0.5) * scaleY - 0.5).toFloat()
            val sy = Math.floor(fy.toDouble()).toInt()
            fy -= sy
            val r0 = sy.coerceIn(0, height - 1) * rowLength
            val r1 = (sy + 1).coerceIn(0, height - 1) * rowLength
            val b0 = 1f - fy
            val dst = dy * rowLength
            for (i in 0 until rowLength) out[dst + i] = rows[r0 + i] * b0 + rows[r1 + i] * fy
        }
        return out
    }
}
