package org.egeunet.lesion

import java.io.IOException
import java.nio.ByteBuffer
import java.nio.ByteOrder
import java.nio.file.Files
import java.nio.file.Path

/** Minimal reader for the .npy files egeunet writes: little-endian float32, int8 or uint8, C order. */
class Npy private constructor(val data: ByteBuffer) {
    fun floats(): FloatArray {
        val out = FloatArray(data.remaining() / 4)
        data.duplicate().order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(out)
        return out
    }

    companion object {
        fun read(path: Path): Npy {
            val b = ByteBuffer.wrap(Files.readAllBytes(path)).order(ByteOrder.LITTLE_ENDIAN)
            if (b.get() != 0x93.toByte() || b.get() != 'N'.toByte()) throw IOException("$path: not a .npy file")
            b.position(6)
            val major = b.get().toInt()
            b.get()
            val headerLength = if (major == 1) b.short.toInt() and 0xffff else b.int
            val header = ByteArray(headerLength)
            b.get(header)
            val text = String(header, Charsets.US_ASCII)
            if ("'fortran_order': True" in text) throw IOException("$path: Fortran order is not supported")
            val start = text.indexOf("'descr': '") + 10
            val descr = text.substring(start, text.indexOf('\'', start))
            if (descr !in setOf("<f4", "|i1", "|u1")) throw IOException("$path: unsupported dtype $descr")
            return Npy(b.slice().order(ByteOrder.LITTLE_ENDIAN))
        }
    }
}
