// EGE-UNet lesion demo: the app, and the pure Kotlin core that the tests also run on a desktop JDK.
pluginManagement {
    repositories {
        google()
        mavenCentral()
        gradlePluginPortal()
    }
}
dependencyResolutionManagement {
    repositoriesMode.set(RepositoriesMode.FAIL_ON_PROJECT_REPOS)
    repositories {
        google() // LiteRT: com.google.ai.edge.litert
        mavenCentral()
    }
}
rootProject.name = "egeunet-lesion-demo"
include(":app", ":lesioncore")
