// Pure Kotlin, no Android imports: the pre/post-processing that must equal egeunet's Python pipeline.
// Compiled and tested on a desktop JDK by tests/test_android_core.py against golden vectors (README.md).
plugins {
    alias(libs.plugins.kotlin.jvm)
}

java {
    sourceCompatibility = JavaVersion.VERSION_1_8
    targetCompatibility = JavaVersion.VERSION_1_8
}

kotlin {
    compilerOptions {
        jvmTarget.set(org.jetbrains.kotlin.gradle.dsl.JvmTarget.JVM_1_8)
    }
}

dependencies {
    testImplementation(libs.junit)
}

tasks.test {
    // GoldenTest's golden cases come from the Python test (-Dgolden.cases=FILE); without them it is skipped.
    System.getProperty("golden.cases")?.let { systemProperty("golden.cases", it) }
}
