package org.egeunet.lesion

/**
 * egeunet's post-processing (`egeunet predict`): the S x S probability map resized bilinearly to the
 * photo's size and thresholded to a 0/255 mask; the overlay tints lesion pixels and outlines the lesion.
 *
 * The mask and the tint are exactly Python's; the outline is drawn as the mask's boundary pixels widened
 * to predict's line width, which approximates (not reproduces) OpenCV's drawContours.
 */
object Postprocess {
    /** Lesion tint (RGB) and its opacity, and the outline colour (RGB), as in `egeunet/commands/predict.py`. */
    private val TINT = floatArrayOf(255f, 40f, 40f)
    private const val TINT_ALPHA = 0.35
    const val CONTOUR_RGB = (255 shl 16) or (230 shl 8)

    /** Probabilities size x size -> mask height x width, 255 where the resized probability >= threshold. */
    @JvmStatic
    fun maskAtSize(prob: FloatArray, size: Int, height: Int, width: Int, threshold: Float): ByteArray {
        val full = Bilinear.resize(prob, size, size, 1, height, width)
        return ByteArray(full.size) { if (full[it] >= threshold) 255.toByte() else 0 }
    }

    /** Share of mask pixels that are lesion. */
    @JvmStatic
    fun areaFraction(mask: ByteArray): Double = if (mask.isEmpty()) 0.0 else mask.count { it.toInt() != 0 }.toDouble() / mask.size

    /** Outline width predict.py uses: max(1, round(max(height, width) / 300)), rounding half to even. */
    @JvmStatic
    fun contourWidth(height: Int, width: Int): Int = maxOf(1, Math.rint(maxOf(height, width) / 300.0).toInt())

    /** ARGB photo with the lesion tinted and outlined (a new array; alpha is kept). */
    @JvmStatic
    fun overlay(argb: IntArray, mask: ByteArray, height: Int, width: Int): IntArray {
        val keep = (1 - TINT_ALPHA).toFloat()
        val alpha = TINT_ALPHA.toFloat()
        val out = argb.copyOf()
        for (i in out.indices) {
            if (mask[i].toInt() == 0) continue
            val p = argb[i]
            var rgb = 0
            for (c in 0 until 3) {
                val v = ((p shr (16 - 8 * c)) and 0xff).toFloat()
                rgb = rgb or (Math.rint((keep * v + alpha * TINT[c]).toDouble()).toInt() shl (16 - 8 * c))
            }
            out[i] = (p and 0xff000000.toInt()) or rgb
        }
        val line = outline(mask, height, width, contourWidth(height, width) / 2)
        for (i in out.indices) if (line[i]) out[i] = (out[i] and 0xff000000.toInt()) or CONTOUR_RGB
        return out
    }

    /** Boundary pixels of the mask (lesion pixels touching background or the image edge), widened by radius. */
    @JvmStatic
    fun outline(mask: ByteArray, height: Int, width: Int, radius: Int): BooleanArray {
        fun lesion(i: Int) = mask[i].toInt() != 0
        val edge = BooleanArray(mask.size) { i ->
            val x = i % width
            val y = i / width
            lesion(i) && (x == 0 || y == 0 || x == width - 1 || y == height - 1 ||
                !lesion(i - 1) || !lesion(i + 1) || !lesion(i - width) || !lesion(i + width))
        }
        if (radius == 0) return edge
        val wide = BooleanArray(mask.size)
        for (y in 0 until height) {
            for (x in 0 until width) {
                if (!edge[y * width + x]) continue
                for (yy in maxOf(0, y - radius)..minOf(height - 1, y + radius)) {
                    for (xx in maxOf(0, x - radius)..minOf(width - 1, x + radius)) wide[yy * width + xx] = true
                }
            }
        }
        return wide
    }
}
