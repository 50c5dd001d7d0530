package org.egeunet.lesion

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Assume
import org.junit.Test
import java.awt.image.BufferedImage
import java.nio.ByteBuffer
import java.nio.ByteOrder
import java.nio.file.Files
import java.nio.file.Paths
import java.util.Properties
import javax.imageio.ImageIO

/**
 * The lesion core against golden vectors written by `egeunet.golden` for freshly exported models.
 *
 * System property `golden.cases` names a properties file (written by tests/test_android_core.py) listing
 * one case per photo and artifact: file paths and the artifact's I/O contract. Every measured difference
 * is printed as `GOLDEN case metric value` for the Python test to report.
 */
class GoldenTest {
    private fun cases(): Properties {
        val file = System.getProperty("golden.cases")
        Assume.assumeTrue("no -Dgolden.cases=FILE: run tests/test_android_core.py", !file.isNullOrEmpty())
        return Properties().apply { Files.newInputStream(Paths.get(file)).use { load(it) } }
    }

    private fun image(p: Properties, key: String): BufferedImage = ImageIO.read(Paths.get(p.getProperty(key)).toFile())

    private fun argb(image: BufferedImage): IntArray = image.getRGB(0, 0, image.width, image.height, null, 0, image.width)

    private fun gray(image: BufferedImage): ByteArray =
        ByteArray(image.width * image.height) { image.raster.getSample(it % image.width, it / image.width, 0).toByte() }

    private fun dtype(name: String) = TensorIO.DType.values().first { it.name.equals(name, ignoreCase = true) }

    private fun io(p: Properties, key: String) = TensorIO(
        p.getProperty("$key.size").toInt(), p.getProperty("$key.layout") == "NHWC", p.getProperty("$key.baked").toBoolean(),
        dtype(p.getProperty("$key.input_dtype")), p.getProperty("$key.input_scale", "0").toFloat(),
        p.getProperty("$key.input_zero_point", "0").toInt(), dtype(p.getProperty("$key.output_dtype")),
        p.getProperty("$key.output_scale", "0").toFloat(), p.getProperty("$key.output_zero_point", "0").toInt()
    )

    private fun report(key: String, metric: String, value: Number) = println("GOLDEN $key $metric $value")

    private fun maxAbsDiff(a: FloatArray, b: FloatArray): Double {
        assertEquals(a.size, b.size)
        return a.indices.fold(0.0) { m, i -> maxOf(m, Math.abs(a[i].toDouble() - b[i])) }
    }

    /** Values of a packed tensor as doubles, whatever its element type. */
    private fun values(buffer: ByteBuffer, type: TensorIO.DType): DoubleArray {
        val b = buffer.duplicate().order(ByteOrder.LITTLE_ENDIAN)
        b.rewind()
        return DoubleArray(b.remaining() / type.bytes) {
            when (type) {
                TensorIO.DType.FLOAT32 -> b.float.toDouble()
                TensorIO.DType.UINT8 -> (b.get().toInt() and 0xff).toDouble()
                TensorIO.DType.INT8 -> b.get().toDouble()
            }
        }
    }

    @Test
    fun everyCaseMatchesPython() {
        val p = cases()
        val keys = p.getProperty("cases").split(",").filter { it.isNotEmpty() }
        assertTrue("no golden cases", keys.isNotEmpty())
        keys.forEach { checkCase(p, it) }
    }

    private fun checkCase(p: Properties, key: String) {
        val io = io(p, key)
        val photo = image(p, "$key.image")
        val h = photo.height
        val w = photo.width
        val pixels = argb(photo)

        // 1. Preprocessing: the canonical tensor of egeunet.preprocess.
        val dCanonical = maxAbsDiff(Preprocess.canonical(pixels, h, w, io.size), Npy.read(Paths.get(p.getProperty("$key.input"))).floats())
        report(key, "canonical_max_abs", dCanonical)
        assertTrue("$key: canonical tensor differs by $dCanonical", dCanonical <= TOLERANCE)

        // 2. Packing: layout, dtype and quantisation of the tensor actually fed to the runtime.
        val mine = values(io.input(pixels, h, w), io.inputType)
        val golden = values(Npy.read(Paths.get(p.getProperty("$key.in"))).data, io.inputType)
        assertEquals("$key: input tensor length", golden.size, mine.size)
        val diffs = mine.indices.map { Math.abs(mine[it] - golden[it]) }
        val dPacked = diffs.fold(0.0) { m, d -> maxOf(m, d) }
        val packedMismatches = diffs.count { it > TOLERANCE }
        report(key, "packed_max_abs", dPacked)
        report(key, "packed_mismatches", packedMismatches)
        // Integer tensors may differ by one step where the float value sits on a rounding boundary.
        assertTrue("$key: packed input differs by $dPacked", dPacked <= if (io.inputType == TensorIO.DType.FLOAT32) TOLERANCE else 1.0)
        assertTrue("$key: $packedMismatches packed values differ", packedMismatches <= mine.size / 10000)

        // 3. Output: raw tensor -> probabilities (dequantised when int8), bit for bit.
        val raw = Npy.read(Paths.get(p.getProperty("$key.out"))).data
        val dProb = maxAbsDiff(io.probabilities(raw), Npy.read(Paths.get(p.getProperty("$key.prob"))).floats())
        report(key, "prob_max_abs", dProb)
        assertEquals("$key: probabilities", 0.0, dProb, 0.0)

        // 4. Mask at the photo's size, through the whole Segmenter with the recorded model output.
        val segmenter = Segmenter(io, object : Segmenter.ModelRunner {
            override fun run(input: ByteBuffer, output: ByteBuffer) {
                output.put(raw.duplicate())
            }
        })
        val result = segmenter.segment(pixels, h, w)
        val goldenMask = gray(image(p, "$key.mask"))
        val maskMismatches = goldenMask.indices.count { result.mask[it] != goldenMask[it] }
        report(key, "mask_mismatches", maskMismatches)
        report(key, "area_fraction", result.areaFraction)
        assertTrue("$key: $maskMismatches mask pixels differ", maskMismatches <= goldenMask.size / 10000)

        // 5. Overlay: tint exact wherever neither side drew the outline; outlines mostly coincide.
        val goldenOverlay = argb(image(p, "$key.overlay"))
        val outline = Postprocess.outline(result.mask, h, w, Postprocess.contourWidth(h, w) / 2)
        var tintMismatches = 0
        var outlineBoth = 0
        var outlineEither = 0
        for (i in goldenOverlay.indices) {
            val theirs = (goldenOverlay[i] and 0xffffff) == Postprocess.CONTOUR_RGB
            if (outline[i] || theirs) {
                outlineEither++
                if (outline[i] && theirs) outlineBoth++
            } else if ((result.overlay[i] and 0xffffff) != (goldenOverlay[i] and 0xffffff)) {
                tintMismatches++
            }
        }
        val outlineIou = if (outlineEither == 0) 1.0 else outlineBoth.toDouble() / outlineEither
        report(key, "overlay_tint_mismatches", tintMismatches)
        report(key, "overlay_outline_iou", outlineIou)
        assertTrue("$key: $tintMismatches tinted pixels differ", tintMismatches <= maskMismatches)
        assertTrue("$key: outline overlap $outlineIou", outlineIou >= 0.3)
    }

    @Test
    fun constantImageStretchesToZero() {
        val grey = IntArray(5 * 7) { 0xff808080.toInt() }
        Preprocess.canonical(grey, 5, 7, 32).forEach { assertEquals(0f, it, 0f) }
    }

    @Test
    fun packsChannelsFirstAndChannelsLast() {
        val chw = floatArrayOf(1f, 2f, 3f, 4f, 10f, 20f, 30f, 40f, 100f, 200f, 300f, 400f) // 3 x 2 x 2
        val nchw = FloatArray(12)
        val nhwc = FloatArray(12)
        TensorIO.float32(2, false).pack(chw).asFloatBuffer().get(nchw)
        TensorIO.float32(2, true).pack(chw).asFloatBuffer().get(nhwc)
        assertArrayEquals(chw, nchw, 0f)
        assertArrayEquals(floatArrayOf(1f, 10f, 100f, 2f, 20f, 200f, 3f, 30f, 300f, 4f, 40f, 400f), nhwc, 0f)
    }

    @Test
    fun int8QuantisationRoundsHalfToEvenAndSaturates() {
        val io = TensorIO(1, true, false, TensorIO.DType.INT8, 2f, -128, TensorIO.DType.INT8, 1f / 256, -128)
        val packed = ByteArray(3)
        io.pack(floatArrayOf(1f, 3f, 1000f)).get(packed)
        assertArrayEquals(byteArrayOf(-128, -126, 127), packed) // rint(0.5) = 0, rint(1.5) = 2, saturated
        assertEquals(0.5f, io.probabilities(ByteBuffer.wrap(byteArrayOf(0)))[0], 0f)
    }

    @Test
    fun bakedModelsTakeRoundedResizedPixels() {
        val io = TensorIO(1, true, true, TensorIO.DType.UINT8, 0f, 0, TensorIO.DType.FLOAT32, 0f, 0)
        val twoPixels = intArrayOf(0xff0a1420.toInt(), 0xff0b1521.toInt()) // 1 x 2 photo -> mean of the two
        val packed = ByteArray(3)
        io.input(twoPixels, 1, 2).get(packed)
        assertArrayEquals(byteArrayOf(10, 20, 32), packed) // rint(10.5) = 10, rint(20.5) = 20, rint(32.5) = 32
    }

    private companion object {
        const val TOLERANCE = 1e-3
    }
}
