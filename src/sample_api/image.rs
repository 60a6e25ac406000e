//! Small real images for thumbnails and image representations.
//!
//! A browser must be able to decode what the sample API serves as a
//! thumbnail (the UI elements show it in an `<img>`), so these are real
//! images: a PNG (truecolour, 8 bits per channel, one IDAT holding a zlib
//! stream of stored deflate blocks) and a baseline JPEG (YCbCr 4:4:4 whose
//! 8x8 blocks are each one colour, so only DC coefficients are coded, with
//! a unit quantisation table). The colour comes from the file id, so two
//! files' thumbnails differ.

/// Side of the square images, in pixels.
pub const SIDE: u32 = 32;

/// The image's two colours: a base from `seed`, and a lighter band.
fn colours(seed: &str) -> ([u8; 3], [u8; 3]) {
    let h = seed.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    let [r, g, b, _] = h.to_le_bytes();
    let base = [r | 0x40, g | 0x40, b | 0x40];
    (base, base.map(|c| c.saturating_add(0x60)))
}

/// A `SIDE` x `SIDE` PNG filled with a colour derived from `seed`, with a
/// lighter band across the middle so it is visibly an image.
pub fn png(seed: &str) -> Vec<u8> {
    let (base, light) = colours(seed);
    let mut raw = Vec::with_capacity(((SIDE * 3 + 1) * SIDE) as usize);
    for y in 0..SIDE {
        raw.push(0); // filter: none
        let band = (SIDE / 4..3 * SIDE / 4).contains(&y);
        for _ in 0..SIDE {
            raw.extend_from_slice(if band { &light } else { &base });
        }
    }
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&SIDE.to_be_bytes());
    ihdr.extend_from_slice(&SIDE.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // depth 8, RGB, deflate, no filter, no interlace
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IDAT", &zlib_stored(&raw));
    chunk(&mut out, b"IEND", &[]);
    out
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32fast::hash(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

/// RFC 1950 around RFC 1951 stored blocks (at most 65535 bytes each).
fn zlib_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x78, 0x01];
    let blocks: Vec<&[u8]> = data.chunks(0xffff).collect();
    for (i, block) in blocks.iter().enumerate() {
        out.push(u8::from(i + 1 == blocks.len()));
        let len = u16::try_from(block.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(block);
    }
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in data {
        a = (a + u32::from(byte)) % 65521;
        b = (b + a) % 65521;
    }
    out.extend_from_slice(&((b << 16) | a).to_be_bytes());
    out
}

/// The same picture as [`png`], as a baseline JPEG.
pub fn jpeg(seed: &str) -> Vec<u8> {
    let (base, light) = colours(seed);
    let side = u16::try_from(SIDE).unwrap_or(32);
    let mut out = vec![0xff, 0xd8];
    // JFIF APP0: version 1.1, no units, 1:1 pixels, no thumbnail.
    segment(&mut out, 0xe0, b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0");
    // One quantisation table of ones: every coefficient kept exactly.
    let mut dqt = vec![0u8];
    dqt.extend_from_slice(&[1u8; 64]);
    segment(&mut out, 0xdb, &dqt);
    let mut sof = vec![8];
    sof.extend_from_slice(&side.to_be_bytes());
    sof.extend_from_slice(&side.to_be_bytes());
    sof.push(3);
    for id in 1..=3 {
        sof.extend_from_slice(&[id, 0x11, 0]); // no subsampling, table 0
    }
    segment(&mut out, 0xc0, &sof);
    // DC table: the 12 size categories, each a 4-bit code equal to itself.
    let mut dht = vec![0x00];
    let mut counts = [0u8; 16];
    counts[3] = 12;
    dht.extend_from_slice(&counts);
    dht.extend(0..12u8);
    // AC table: end-of-block only, code `0`.
    dht.push(0x10);
    let mut counts = [0u8; 16];
    counts[0] = 1;
    dht.extend_from_slice(&counts);
    dht.push(0x00);
    segment(&mut out, 0xc4, &dht);
    segment(&mut out, 0xda, &[3, 1, 0x00, 2, 0x00, 3, 0x00, 0, 63, 0]);

    let mut bits = BitWriter::default();
    let mut previous = [0i32; 3];
    let blocks = SIDE / 8;
    for by in 0..blocks {
        let band = (blocks / 4..blocks - blocks / 4).contains(&by);
        let rgb = if band { light } else { base };
        let ycc = ycbcr(rgb);
        for _ in 0..blocks {
            for (c, value) in ycc.iter().enumerate() {
                // A flat block's DC coefficient is 8 x (sample - 128).
                let dc = 8 * (i32::from(*value) - 128);
                let diff = dc - previous[c];
                previous[c] = dc;
                let size = 32 - diff.unsigned_abs().leading_zeros();
                bits.put(size, 4);
                let magnitude = if diff < 0 { diff - 1 } else { diff };
                bits.put((magnitude & ((1 << size) - 1)) as u32, size);
                bits.put(0, 1); // end of block
            }
        }
    }
    out.extend_from_slice(&bits.finish());
    out.extend_from_slice(&[0xff, 0xd9]);
    out
}

fn ycbcr([r, g, b]: [u8; 3]) -> [u8; 3] {
    let (r, g, b) = (f32::from(r), f32::from(g), f32::from(b));
    let y = 0.299 * r + 0.587 * g + 0.114 * b;
    let cb = 128.0 - 0.168_736 * r - 0.331_264 * g + 0.5 * b;
    let cr = 128.0 + 0.5 * r - 0.418_688 * g - 0.081_312 * b;
    [y, cb, cr].map(|v| v.round().clamp(0.0, 255.0) as u8)
}

fn segment(out: &mut Vec<u8>, marker: u8, data: &[u8]) {
    out.extend_from_slice(&[0xff, marker]);
    let len = u16::try_from(data.len() + 2).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(data);
}

/// Entropy-coded bits, most significant first, with JPEG's byte stuffing.
#[derive(Default)]
struct BitWriter {
    out: Vec<u8>,
    acc: u32,
    len: u32,
}

impl BitWriter {
    fn put(&mut self, value: u32, count: u32) {
        for i in (0..count).rev() {
            self.acc = (self.acc << 1) | ((value >> i) & 1);
            self.len += 1;
            if self.len == 8 {
                self.push_byte();
            }
        }
    }

    fn push_byte(&mut self) {
        let byte = (self.acc & 0xff) as u8;
        self.out.push(byte);
        if byte == 0xff {
            self.out.push(0);
        }
        self.acc = 0;
        self.len = 0;
    }

    /// Pads the last byte with 1-bits, as the standard asks.
    fn finish(mut self) -> Vec<u8> {
        while self.len != 0 {
            self.put(1, 1);
        }
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png_is_well_formed() {
        let p = png("1001");
        assert!(p.starts_with(b"\x89PNG\r\n\x1a\n"));
        // Walk the chunks: each length and CRC must agree with its bytes.
        let mut at = 8;
        let mut kinds = Vec::new();
        while at < p.len() {
            let len = u32::from_be_bytes(p[at..at + 4].try_into().unwrap()) as usize;
            let body = &p[at + 4..at + 8 + len];
            let crc = u32::from_be_bytes(p[at + 8 + len..at + 12 + len].try_into().unwrap());
            assert_eq!(crc32fast::hash(body), crc);
            kinds.push(String::from_utf8_lossy(&body[..4]).into_owned());
            at += 12 + len;
        }
        assert_eq!(kinds, ["IHDR", "IDAT", "IEND"]);
        assert_ne!(png("1001"), png("1002"));
    }

    #[test]
    fn jpeg_is_well_formed() {
        let j = jpeg("1001");
        assert!(j.starts_with(&[0xff, 0xd8, 0xff, 0xe0]));
        assert!(j.ends_with(&[0xff, 0xd9]));
        // Walk the marker segments up to the scan: SOI, APP0, DQT, SOF0, DHT, SOS.
        let mut at = 2;
        let mut markers = Vec::new();
        while j[at] == 0xff && j[at + 1] != 0xda {
            markers.push(j[at + 1]);
            at += 2 + usize::from(u16::from_be_bytes([j[at + 2], j[at + 3]]));
        }
        assert_eq!(markers, [0xe0, 0xdb, 0xc0, 0xc4]);
        // In the entropy-coded data, 0xff is always followed by a stuffed 0.
        let scan = &j[at + 2 + 12..j.len() - 2];
        assert!(scan.windows(2).all(|w| w[0] != 0xff || w[1] == 0));
        assert_ne!(jpeg("1001"), jpeg("1002"));
    }
}
