package org.egeunet.demo

import android.content.Context
import android.graphics.Bitmap
import org.egeunet.lesion.Segmenter
import org.egeunet.lesion.TensorIO
import org.tensorflow.lite.DataType
import org.tensorflow.lite.Interpreter
import org.tensorflow.lite.Tensor
import java.nio.ByteBuffer
import java.nio.ByteOrder

/**
 * An exported EGE-UNet .tflite from the app's assets, run by the LiteRT interpreter on the CPU.
 * The artifact's contract is read from its tensors: [1,S,S,3] is NHWC and [1,3,S,S] NCHW, uint8 input
 * means baked preprocessing, int8 tensors carry their scale and zero point. Everything else is the
 * tested pure Kotlin core (org.egeunet.lesion).
 */
class LiteRtSegmenter(context: Context, val assetName: String) : AutoCloseable {
    private val interpreter: Interpreter
    val io: TensorIO
    private val segmenter: Segmenter

    init {
        val bytes = context.assets.open(assetName).use { it.readBytes() }
        val model = ByteBuffer.allocateDirect(bytes.size).order(ByteOrder.nativeOrder())
        model.put(bytes).rewind()
        interpreter = Interpreter(model, Interpreter.Options().setNumThreads(4))
        io = contract(interpreter.getInputTensor(0), interpreter.getOutputTensor(0))
        segmenter = Segmenter(io, object : Segmenter.ModelRunner {
            override fun run(input: ByteBuffer, output: ByteBuffer) = interpreter.run(input, output)
        })
    }

    /** Segment one photo: mask at the photo's size, overlay, area fraction and inference milliseconds. */
    fun segment(photo: Bitmap): Segmenter.Result {
        val pixels = IntArray(photo.width * photo.height)
        photo.getPixels(pixels, 0, photo.width, 0, 0, photo.width, photo.height)
        return segmenter.segment(pixels, photo.height, photo.width)
    }

    override fun close() = interpreter.close()

    private companion object {
        fun dtype(type: DataType): TensorIO.DType = when (type) {
            DataType.FLOAT32 -> TensorIO.DType.FLOAT32
            DataType.INT8 -> TensorIO.DType.INT8
            DataType.UINT8 -> TensorIO.DType.UINT8
            else -> throw IllegalArgumentException("unsupported tensor type $type")
        }

        fun contract(input: Tensor, output: Tensor): TensorIO {
            val shape = input.shape()
            require(shape.size == 4 && (shape[1] == 3 || shape[3] == 3)) { "not an EGE-UNet input: ${shape.contentToString()}" }
            val nhwc = shape[3] == 3 && shape[1] != 3
            val inQ = input.quantizationParams()
            val outQ = output.quantizationParams()
            return TensorIO(
                if (nhwc) shape[1] else shape[2], nhwc, input.dataType() == DataType.UINT8,
                dtype(input.dataType()), inQ.scale, inQ.zeroPoint,
                dtype(output.dataType()), outQ.scale, outQ.zeroPoint,
            )
        }
    }
}
