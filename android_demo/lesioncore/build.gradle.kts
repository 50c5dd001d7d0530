// Pure Java, no Android imports: the pre/post-processing that must equal egeunet's Python pipeline.
// Tested on a desktop JDK by tests/test_android_core.py against golden vectors (see README.md).
plugins {
    `java-library`
}

java {
    sourceCompatibility = JavaVersion.VERSION_1_8
    targetCompatibility = JavaVersion.VERSION_1_8
}

dependencies {
    testImplementation(libs.junit)
}

tasks.test {
    // GoldenTest's golden cases come from the Python test (-Dgolden.cases=FILE); without them it is skipped.
    System.getProperty("golden.cases")?.let { systemProperty("golden.cases", it) }
}
