package org.egeunet.lesion

import java.nio.ByteBuffer

/**
 * One photo through one exported model: pack the input, run, read the probabilities, build the mask at
 * the photo's size, its area fraction and the overlay. The runtime is plugged in as a [ModelRunner]
 * (LiteRT's Interpreter on Android, recorded outputs in the tests).
 */
class Segmenter(private val io: TensorIO, private val runner: ModelRunner) {
    /** Runs the model: reads `input`, writes the raw output tensor into `output`. */
    interface ModelRunner {
        fun run(input: ByteBuffer, output: ByteBuffer)
    }

    /** What the app shows for one photo. */
    class Result(
        @JvmField val probabilities: FloatArray,
        @JvmField val mask: ByteArray,
        @JvmField val overlay: IntArray,
        @JvmField val areaFraction: Double,
        @JvmField val inferenceMillis: Double
    )

    /** Segment one photo given as ARGB pixels, height x width. */
    fun segment(argb: IntArray, height: Int, width: Int): Result {
        val input = io.input(argb, height, width)
        val output = io.newOutputBuffer()
        val start = System.nanoTime()
        runner.run(input, output)
        val millis = (System.nanoTime() - start) / 1e6
        val prob = io.probabilities(output)
        val mask = Postprocess.maskAtSize(prob, io.size, height, width, THRESHOLD)
        return Result(prob, mask, Postprocess.overlay(argb, mask, height, width), Postprocess.areaFraction(mask), millis)
    }

    companion object {
        const val THRESHOLD = 0.5f
    }
}
