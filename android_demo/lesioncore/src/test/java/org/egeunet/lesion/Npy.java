package org.egeunet.lesion;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

/** Minimal reader for the .npy files egeunet writes: little-endian float32, int8 or uint8, C order. */
final class Npy {
    final String descr;
    final ByteBuffer data;

    private Npy(String descr, ByteBuffer data) {
        this.descr = descr;
        this.data = data;
    }

    static Npy read(Path path) throws IOException {
        ByteBuffer b = ByteBuffer.wrap(Files.readAllBytes(path)).order(ByteOrder.LITTLE_ENDIAN);
        if (b.get() != (byte) 0x93 || b.get() != 'N') {
            throw new IOException(path + ": not a .npy file");
        }
        b.position(6);
        int major = b.get();
        b.get();
        int headerLength = major == 1 ? (b.getShort() & 0xffff) : b.getInt();
        byte[] header = new byte[headerLength];
        b.get(header);
        String text = new String(header, StandardCharsets.US_ASCII);
        if (text.contains("'fortran_order': True")) {
            throw new IOException(path + ": Fortran order is not supported");
        }
        int start = text.indexOf("'descr': '") + 10;
        String descr = text.substring(start, text.indexOf('\'', start));
        if (!descr.equals("<f4") && !descr.equals("|i1") && !descr.equals("|u1")) {
            throw new IOException(path + ": unsupported dtype " + descr);
        }
        return new Npy(descr, b.slice().order(ByteOrder.LITTLE_ENDIAN));
    }

    float[] floats() {
        ByteBuffer b = data.duplicate().order(ByteOrder.LITTLE_ENDIAN);
        float[] out = new float[b.remaining() / 4];
        b.asFloatBuffer().get(out);
        return out;
    }

    byte[] bytes() {
        byte[] out = new byte[data.remaining()];
        data.duplicate().get(out);
        return out;
    }
}
