package org.egeunet.lesion

import java.nio.ByteBuffer
import java.nio.ByteOrder

/**
 * How one exported artifact takes its input and gives its output (egeunet's artifact contract): layout
 * (NCHW or NHWC), baked preprocessing (uint8 pixels in, the graph stretches), and int8 I/O with the
 * tensors' own scale and zero point. Mirrors `egeunet.export.io.ArtifactIO`.
 *
 * Quantisation is `clamp(rint(x / scale) + zeroPoint, -128, 127)` (round half to even), dequantisation
 * `(q - zeroPoint) * scale`, both in float32.
 */
class TensorIO(
    @JvmField val size: Int,
    @JvmField val nhwc: Boolean,
    @JvmField val baked: Boolean,
    @JvmField val inputType: DType,
    @JvmField val inputScale: Float,
    @JvmField val inputZeroPoint: Int,
    @JvmField val outputType: DType,
    @JvmField val outputScale: Float,
    @JvmField val outputZeroPoint: Int
) {
    /** Element type of an input or output tensor. */
    enum class DType(val bytes: Int) { FLOAT32(4), INT8(1), UINT8(1) }

    init {
        require(!(baked && inputType == DType.INT8)) { "a baked-preprocessing model takes uint8 (or float32) pixels, not int8" }
    }

    /** A direct, little-endian buffer large enough for the output tensor (what the interpreter writes). */
    fun newOutputBuffer(): ByteBuffer = ByteBuffer.allocateDirect(size * size * outputType.bytes).order(ByteOrder.LITTLE_ENDIAN)

    /** The photo (ARGB pixels) as this artifact's input tensor, ready for the interpreter. */
    fun input(argb: IntArray, height: Int, width: Int): ByteBuffer =
        pack(if (baked) pixels(Preprocess.resized(argb, height, width, size)) else Preprocess.canonical(argb, height, width, size))

    /** Canonical 3 x S x S values (stretched floats, or pixel values when baked) -> the input tensor. */
    fun pack(chw: FloatArray): ByteBuffer {
        val plane = size * size
        val buffer = ByteBuffer.allocateDirect(3 * plane * inputType.bytes).order(ByteOrder.LITTLE_ENDIAN)
        for (i in 0 until 3 * plane) {
            // i walks the tensor in its own layout; (c, p) is the channel and pixel it holds.
            val c = if (nhwc) i % 3 else i / plane
            val p = if (nhwc) i / 3 else i % plane
            val v = chw[c * plane + p]
            when (inputType) {
                DType.FLOAT32 -> buffer.putFloat(v)
                DType.UINT8 -> buffer.put(v.toInt().toByte())
                DType.INT8 -> buffer.put((Math.rint((v / inputScale).toDouble()).toInt() + inputZeroPoint).coerceIn(-128, 127).toByte())
            }
        }
        buffer.rewind()
        return buffer
    }

    /** The output tensor (1 x S x S x 1 or 1 x 1 x S x S: the same order) -> probabilities S x S. */
    fun probabilities(output: ByteBuffer): FloatArray {
        val b = output.duplicate().order(ByteOrder.LITTLE_ENDIAN)
        b.rewind()
        return FloatArray(size * size) {
            when (outputType) {
                DType.FLOAT32 -> b.float
                DType.UINT8 -> ((b.get().toInt() and 0xff) - outputZeroPoint) * outputScale
                DType.INT8 -> (b.get() - outputZeroPoint) * outputScale
            }
        }
    }

    /** Resized RGB (S x S x 3 interleaved floats) -> rounded uint8 pixel values as 3 x S x S floats. */
    private fun pixels(hwc: FloatArray): FloatArray {
        val plane = size * size
        val chw = FloatArray(3 * plane)
        for (i in 0 until plane) {
            for (c in 0 until 3) chw[c * plane + i] = Math.rint(hwc[3 * i + c].toDouble()).toInt().coerceIn(0, 255).toFloat()
        }
        return chw
    }

    companion object {
        /** A float32-in, float32-out artifact. */
        @JvmStatic
        fun float32(size: Int, nhwc: Boolean) = TensorIO(size, nhwc, false, DType.FLOAT32, 0f, 0, DType.FLOAT32, 0f, 0)
    }
}
